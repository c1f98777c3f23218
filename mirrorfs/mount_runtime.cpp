#include "mirrorfs/mount_runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/manifest.h"
#include "common/volume_attrs.h"
#include "mirrorfs/cli.h"
#include "mirrorfs/journal_setup.h"
#include "mirrorfs/log.h"
#include "mirrorfs/status_json.h"

namespace mirror::fs {
namespace {

using common::Status;

// `mirrorfs checkpoint` waits at most this long for the consistency point.
constexpr std::chrono::minutes kCheckpointTimeout{10};

// True when the directory open at `fd` has no entries besides . and ..
bool IsEmptyDir(int fd) {
  common::UniqueFd dup(openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup) return false;
  DIR* dir = fdopendir(dup.get());
  if (dir == nullptr) return false;
  dup.release();
  bool empty = true;
  while (struct dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(dir);
  return empty;
}

std::string DescribeRecovery(const RecoveryReport& r) {
  std::string range = "seq " + std::to_string(r.from_seq) + ".." + std::to_string(r.through_seq);
  std::string line = "recovery after a " +
                     std::string(r.same_boot ? "daemon crash" : "machine crash or reboot") +
                     ": replayed " + std::to_string(r.replayed) + " record(s) onto BACKING (" +
                     range + ")";
  if (r.voided > 0) line += ", skipped " + std::to_string(r.voided) + " voided";
  if (r.failed > 0) line += ", " + std::to_string(r.failed) + " FAILED (see above)";
  return line;
}

}  // namespace

common::Result<std::unique_ptr<MountRuntime>> MountRuntime::Start(const MountOptions& options,
                                                                  const MountConfig& config) {
  std::unique_ptr<MountRuntime> rt(new MountRuntime());
  rt->started_ = std::chrono::steady_clock::now();
  rt->options_ = options;
  rt->config_ = config;
  // Before anything is written to BACKING: is it an image that mirrord writes?
  MIRROR_ASSIGN_OR_RETURN(std::optional<std::string> image_of,
                          common::ReadImageMark(options.backing));
  if (image_of) {
    return Status::InvalidArgument(
        options.backing + " is the image of mirrord's store " + *image_of +
        ": mirrord writes it, a mount would make it diverge. Read it through a read-only "
        "bind mount, or make it a primary first with `mirrord promote` "
        "(docs/operations.md)");
  }
  MIRROR_ASSIGN_OR_RETURN(rt->volume_id_, EnsureVolumeId(options.backing));
  rt->backing_fd_.reset(open(options.backing.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rt->backing_fd_) return Status::IOError("open " + options.backing, errno);

  MIRROR_ASSIGN_OR_RETURN(const uint64_t epoch, VolumeEpoch(options.backing));
  MIRROR_ASSIGN_OR_RETURN(OpenedJournal opened, OpenMountJournal(config, rt->volume_id_, epoch));
  rt->journal_ = std::move(opened.journal);
  // The largest record: a max_write write with a long path (common::kDefaultMaxRecordBytes
  // allows 64 KiB besides the data).
  const uint64_t needed = uint64_t{options.max_write} + 64 * 1024;
  if (rt->journal_->max_record_bytes() < needed) {
    if (opened.created) {
      rt->journal_.reset();
      unlink(config.journal_path.c_str());  // empty and just made: do not leave it behind
      return Status::InvalidArgument("journal_size=" + std::to_string(config.journal_size >> 10) +
                                     "K is too small: a " + std::to_string(options.max_write) +
                                     "-byte write needs a journal of at least " +
                                     std::to_string((2 * needed >> 20) + 2) + "M");
    }
    return Status::InvalidArgument(
        "journal " + config.journal_path + " is too small: its records can hold " +
        std::to_string(rt->journal_->max_record_bytes()) + " bytes, a " +
        std::to_string(options.max_write) + "-byte write needs " + std::to_string(needed) +
        " (a journal of at least " + std::to_string((2 * needed >> 20) + 2) +
        "M; delete it to make a new one with journal_size=, or lower max_write=)");
  }
  if (opened.created) {
    Log(LogLevel::kNotice, "created journal " + config.journal_path + " (" +
                               std::to_string(rt->journal_->stats().capacity_bytes >> 20) +
                               " MiB ring)");
  }
  auto recovered = RecoverBacking(*rt->journal_, options.backing, opened.same_boot);
  if (!recovered.ok()) return recovered.status().Annotate("recovery of " + options.backing);
  rt->recovery_ = *recovered;
  if (opened.created) rt->recovery_.kind = "new journal";
  if (rt->recovery_.through_seq >= rt->recovery_.from_seq) {
    Log(rt->recovery_.failed > 0 ? LogLevel::kError : LogLevel::kNotice,
        DescribeRecovery(rt->recovery_));
  }
  rt->checkpointer_ =
      std::make_unique<Checkpointer>(*rt->journal_, rt->backing_fd_.get(), config.cp_interval);
  if (config.mirror.enabled()) {
    // Not started yet (threads come in Serve): until it connects, its durable seq is 0
    // and the consistency point below frees nothing mirrord may still need.
    ReplicationIdentity id{config.source_id, rt->volume_id_, rt->journal_->identity().epoch,
                           config.journal_path + ".out-of-sync", config.journal_path + ".fenced"};
    rt->mirror_ = std::make_unique<ReplicationClient>(*rt->journal_, config.mirror, id);
    rt->checkpointer_->AttachMirror(rt->mirror_.get());
    // A journal newer than BACKING's data: mirrord's image needs all of it first.
    if (opened.created && !IsEmptyDir(rt->backing_fd_.get())) {
      MIRROR_RETURN_IF_ERROR(ReplicationClient::MarkResyncNeeded(
          id.out_of_sync_marker, "baseline: BACKING held data before its first mirrored mount"));
    }
  }
  // What recovery replayed is in BACKING now: a consistency point makes it durable and
  // empties the journal, before this boot is stamped as the journal's.
  auto cp = rt->checkpointer_->Request(kCheckpointTimeout);
  if (!cp.ok()) return cp.status().Annotate("consistency point after recovery");
  MIRROR_RETURN_IF_ERROR(StampJournalBoot(config.journal_path));

  auto sink = std::make_unique<JournalSink>(*rt->journal_);
  rt->sink_ = sink.get();
  FsParams params;
  params.max_write = options.max_write;
  MIRROR_ASSIGN_OR_RETURN(rt->fs_, Filesystem::Open(options.backing, params, std::move(sink)));
  rt->sink_->Attach(rt->fs_->inodes());
  rt->sink_->AttachMirror(rt->mirror_.get());
  if (rt->mirror_) {
    Filesystem* fs = rt->fs_.get();
    rt->mirror_->EnableResync(options.backing, [fs] { return fs->FreezeChanges(); });
  }
  return rt;
}

common::Status MountRuntime::Serve() {
  if (mirror_) mirror_->Start();
  checkpointer_->Start();
  MountRuntime* self = this;
  auto server = control::ControlServer::Start(
      ControlSocketPath(options_.mountpoint),
      [self](const nlohmann::json& request) { return self->HandleControl(request); });
  if (!server.ok()) return server.status().Annotate("control socket");
  control_ = std::move(*server);
  return Status::Ok();
}

nlohmann::json MountRuntime::HandleControl(const nlohmann::json& request) {
  const std::string cmd = request.value("cmd", "");
  if (cmd == "status") {
    StatusSources s;
    s.config = &config_;
    s.volume_id = volume_id_;
    s.backing = options_.backing;
    s.mountpoint = options_.mountpoint;
    s.journal = journal_.get();
    s.checkpointer = checkpointer_.get();
    s.sink = sink_;
    s.mirror = mirror_.get();
    s.mirror_config = &config_.mirror;
    s.recovery = recovery_;
    s.started = started_;
    return BuildStatus(s);
  }
  if (cmd == "checkpoint") {
    auto seq = checkpointer_->Request(kCheckpointTimeout);
    if (!seq.ok()) return {{"ok", false}, {"error", seq.status().ToString()}};
    return {{"ok", true}, {"cp_seq", *seq}};
  }
  if (cmd == "verify") return Verify();
  return {{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

// `mirrorfs verify`: a checkpoint (everything so far in the image), then the image's
// manifest from mirrord and BACKING's, both with content hashes, compared here.
nlohmann::json MountRuntime::Verify() {
  constexpr size_t kMaxListed = 1000;
  if (!mirror_)
    return {{"ok", false}, {"error", "local-only mount (no mirror=): no image to compare"}};
  auto cp = checkpointer_->Request(kCheckpointTimeout);
  if (!cp.ok()) return {{"ok", false}, {"error", "checkpoint: " + cp.status().ToString()}};
  common::ManifestOptions o;
  o.content_hashes = true;
  auto image = mirror_->FetchManifest(true);
  if (!image.ok())
    return {{"ok", false}, {"error", "image manifest: " + image.status().ToString()}};
  auto local = common::BuildManifest(options_.backing, o);
  if (!local.ok())
    return {{"ok", false}, {"error", "BACKING manifest: " + local.status().ToString()}};
  const std::vector<common::ManifestDiff> diffs = common::CompareManifests(*local, *image);
  nlohmann::json lines = nlohmann::json::array();
  for (size_t i = 0; i < diffs.size() && i < kMaxListed; ++i) lines.push_back(diffs[i].Describe());
  if (diffs.size() > kMaxListed) {
    lines.push_back("... and " + std::to_string(diffs.size() - kMaxListed) + " more");
  }
  Log(diffs.empty() ? LogLevel::kNotice : LogLevel::kWarning,
      "verify at seq " + std::to_string(*cp) + ": " +
          (diffs.empty() ? "identical (" + std::to_string(local->size()) + " entries)"
                         : std::to_string(diffs.size()) + " difference(s)"));
  return {{"ok", true},
          {"identical", diffs.empty()},
          {"cp_seq", *cp},
          {"entries", local->size()},
          {"difference_count", diffs.size()},
          {"differences", lines}};
}

common::Status MountRuntime::Shutdown() {
  if (shut_down_) return Status::Ok();
  shut_down_ = true;
  control_.reset();
  checkpointer_->Stop();
  auto cp = checkpointer_->Request(kCheckpointTimeout);  // runs here: the thread is gone
  if (mirror_) {
    journal_->Shutdown();  // a resync waiting for journal space gives up
    mirror_->Stop();
  }
  if (!cp.ok()) return cp.status().Annotate("last consistency point");
  const common::JournalStats js = journal_->stats();
  if (js.tail_seq > js.last_assigned_seq) {
    Log(LogLevel::kNotice, "clean unmount: journal empty after seq " + std::to_string(*cp));
  } else {
    Log(LogLevel::kNotice, "clean unmount: seqs " + std::to_string(js.tail_seq) + ".." +
                               std::to_string(js.last_assigned_seq) +
                               " stay in the journal until mirrord has them durably "
                               "(shipped after the next mount)");
  }
  return Status::Ok();
}

MountRuntime::~MountRuntime() {
  control_.reset();
  if (checkpointer_) checkpointer_->Stop();
  if (mirror_) {
    journal_->Shutdown();
    mirror_->Stop();  // wakes writers still waiting for an acknowledgement
  }
  fs_.reset();  // before the journal its sink writes to
}

}  // namespace mirror::fs
