// mirrorfs BACKING MOUNTPOINT [-o opts] [-f] [-d] [-s]: mounts the mirrored file system.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "mirrorfs/cli.h"
#include "mirrorfs/creds.h"
#include "mirrorfs/daemon.h"
#include "mirrorfs/log.h"
#include "mirrorfs/mount_config.h"
#include "mirrorfs/mount_runtime.h"
#include "mirrorfs/options.h"
#include "mirrorfs/session.h"

namespace mirror::fs {
namespace {

// Reasons the mount cannot even be tried; empty if both paths look right.
std::string CheckPaths(const MountOptions& o) {
  struct stat st;
  if (stat(o.backing.c_str(), &st) != 0) return "backing " + o.backing + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return "backing " + o.backing + " is not a directory";
  if (stat(o.mountpoint.c_str(), &st) != 0) {
    if (errno == ENOTCONN) return "mountpoint " + o.mountpoint + " is a dead FUSE mount (fusermount3 -u it)";
    return "mountpoint " + o.mountpoint + ": " + std::strerror(errno);
  }
  if (!S_ISDIR(st.st_mode)) return "mountpoint " + o.mountpoint + " is not a directory";
  struct stat up;
  std::string parent = o.mountpoint + "/..";
  if (stat(parent.c_str(), &up) == 0 && (up.st_dev != st.st_dev || up.st_ino == st.st_ino)) {
    return "mountpoint " + o.mountpoint + " is busy: already a mount point";
  }
  return "";
}

int Main(int argc, char** argv) {
  if (argc >= 2 && IsCliCommand(argv[1])) return RunCli(argc, argv);
  auto parsed = ParseMountOptions(argc, argv);
  if (!parsed.ok()) {
    Log(LogLevel::kError, parsed.status().message() + " (try --help)");
    return kExitUsage;
  }
  MountOptions& o = *parsed;
  if (o.show_help) {
    std::fputs(UsageText(argv[0]).c_str(), stdout);
    return kExitOk;
  }
  if (o.show_version) {
    std::printf("mirrorfs %s (libfuse %s)\n", MIRRORFS_VERSION, fuse_pkgversion());
    return kExitOk;
  }
  SetLogMountpoint(o.mountpoint);
  for (const std::string& w : o.warnings) Log(LogLevel::kWarning, w);
  auto config = LoadMountConfig(o);
  if (!config.ok()) {
    bool usage = config.status().code() == common::Code::kInvalidArgument;
    Log(LogLevel::kError, config.status().message());
    return usage ? kExitUsage : kExitMountFailure;
  }
  AddConfigFuseOptions(*config, &o);
  if (std::string reason = CheckPaths(o); !reason.empty()) {
    Log(LogLevel::kError, reason);
    return kExitMountFailure;
  }
  // No thread exists before this point: the fork keeps everything we need.
  StartupReporter reporter = StartupReporter::Begin(o.foreground);
  InitCallerCreds();
  auto runtime = MountRuntime::Start(o, *config);
  if (!runtime.ok()) return reporter.Fail(kExitMountFailure, runtime.status().message());
  auto session = Session::Create((*runtime)->fs(), o);
  if (!session.ok()) {
    bool usage = session.status().code() == common::Code::kInvalidArgument;
    return reporter.Fail(usage ? kExitUsage : kExitMountFailure, session.status().message());
  }
  if (common::Status s = (*runtime)->Serve(); !s.ok()) {
    return reporter.Fail(kExitMountFailure, s.message());
  }
  Log(LogLevel::kNotice, "serving " + o.backing + " (journal " + config->journal_path + ")");
  reporter.Ready();
  int rc = (*session)->Run(o.single_thread);
  session->reset();  // unmount before the Filesystem goes away
  if (common::Status s = (*runtime)->Shutdown(); !s.ok()) {
    Log(LogLevel::kError, s.message());
    rc = 1;
  }
  return rc == 0 ? kExitOk : kExitMountFailure;
}

}  // namespace
}  // namespace mirror::fs

int main(int argc, char** argv) { return mirror::fs::Main(argc, argv); }
