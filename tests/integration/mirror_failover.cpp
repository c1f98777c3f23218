#include "mirror_failover.h"

#include "common/journal.h"
#include "mirror_rig.h"

namespace mirror::itest {
namespace {

CommandOutcome Run(std::vector<std::string> argv, bool json) {
  CommandOutcome o;
  o.exit_code = RunCommand(argv, &o.output, 300);
  if (json) {
    // The JSON object is stdout's last line; stderr (merged) may precede it.
    const size_t start = o.output.rfind("\n{");
    o.json = nlohmann::json::parse(o.output.substr(start == std::string::npos ? 0 : start + 1),
                                   nullptr, false);
  }
  return o;
}

std::string MirrorfsBinary() {
  MountOptions mo;
  std::string error;
  return MountOptionsFromEnv(&mo, &error) ? mo.binary : "mirrorfs";
}

}  // namespace

CommandOutcome Promote(const std::string& state_dir, const std::string& source,
                       const std::vector<std::string>& extra, bool json) {
  std::vector<std::string> argv = {MIRRORD_BINARY, "promote", source, "--state-dir", state_dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (json) argv.push_back("--json");
  return Run(argv, json);
}

CommandOutcome Adopt(const std::string& state_dir, const std::string& source,
                     const std::vector<std::string>& args) {
  std::vector<std::string> argv = {MIRRORD_BINARY, "adopt", source};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--state-dir", state_dir, "--json"});
  return Run(argv, true);
}

std::unique_ptr<FuseMount> MountDir(const std::string& backing,
                                    const std::vector<std::string>& opts, std::string* error) {
  MountOptions mo;
  if (!MountOptionsFromEnv(&mo, error)) return nullptr;
  mo.kind = FsKind::kMirrorfs;
  mo.backing = backing;
  mo.fs_opts = opts;
  return FuseMount::Start(mo, error);
}

nlohmann::json MountStatus(const FuseMount& mount) {
  std::string out;
  RunCommand({MirrorfsBinary(), "status", mount.mountpoint(), "--json"}, &out, 30);
  return nlohmann::json::parse(out, nullptr, false);
}

int MountCheckpoint(const FuseMount& mount) {
  std::string out;
  return RunCommand({MirrorfsBinary(), "checkpoint", mount.mountpoint()}, &out, 120);
}

uint64_t JournalEpoch(const std::string& journal_path) {
  auto identity = common::Journal::ReadIdentity(journal_path);
  return identity.ok() ? identity->epoch : 0;
}

}  // namespace mirror::itest
