#include "mirrorfs/journal_sink.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/quote.h"
#include "mirrorfs/log.h"
#include "mirrorfs/record_builder.h"

namespace mirror::fs {
namespace {

constexpr struct timespec kOmit = {0, UTIME_OMIT};

// Sets mtime (and atime where given) of `name` in `dir`, or of `dir` itself if `name` is
// empty. Runs as whatever creds the thread has; the sink's callers run it as root.
int SetTimes(int dir, const std::string& name, struct timespec atime, struct timespec mtime) {
  struct timespec tv[2] = {atime, mtime};
  int rc = name.empty() ? utimensat(dir, "", tv, AT_EMPTY_PATH)
                        : utimensat(dir, name.c_str(), tv, AT_SYMLINK_NOFOLLOW);
  return rc == 0 ? 0 : errno;
}

bool IsNewNodeKind(MutationKind kind) {
  return kind == MutationKind::kCreate || kind == MutationKind::kMknod ||
         kind == MutationKind::kMkdir || kind == MutationKind::kSymlink;
}

bool IsDataKind(MutationKind kind) {
  return kind == MutationKind::kWrite || kind == MutationKind::kCopyFileRange;
}

// Logs at most one line per second per call site, plus how many were left out.
class RateLimitedLog {
 public:
  void Warn(const std::string& line) {
    int64_t now = time(nullptr);
    int64_t last = last_.load(std::memory_order_relaxed);
    if (now == last || !last_.compare_exchange_strong(last, now)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    uint64_t dropped = dropped_.exchange(0);
    Log(LogLevel::kWarning,
        dropped == 0 ? line : line + " (and " + std::to_string(dropped) + " more like it)");
  }

 private:
  std::atomic<int64_t> last_{0};
  std::atomic<uint64_t> dropped_{0};
};

RateLimitedLog unjournaled_log;
RateLimitedLog error_log;

}  // namespace

int JournalSink::Before(const Mutation& m) {
  SinkSlot& slot = m.sink_slot();
  clock_gettime(CLOCK_REALTIME, &slot.time);
  BuiltRecord built;
  if (int err = BuildRecord(m, *inodes_, slot.time, &built)) return err;
  if (built.outcome == BuiltRecord::Outcome::kNoName) return 0;
  if (built.outcome == BuiltRecord::Outcome::kUnknownName) {
    unjournaled_.fetch_add(1, std::memory_order_relaxed);
    unjournaled_log.Warn(std::string("a ") + MutationKindName(m.kind()) +
                         " on an inode with no known name was not journaled; the mirror "
                         "needs a resync (was BACKING changed behind the mount?)");
    return 0;
  }
  thread_local common::EncodedRecord rec;
  if (common::Status s = rec.Build(built.op); !s.ok()) {
    error_log.Warn(std::string(MutationKindName(m.kind())) + " refused: " + s.message());
    return EIO;
  }
  auto held = journal_.AppendHeld(rec);
  if (!held.ok()) {
    ReportJournalError(held.status(), "append");
    return EIO;
  }
  slot.held = true;
  slot.seq = held->seq;
  slot.last_seq = held->seq;
  slot.offset = held->offset;
  slot.check_node = built.predicts_node;
  slot.mode = built.mode;
  slot.uid = built.uid;
  slot.gid = built.gid;
  return 0;
}

void JournalSink::After(const Mutation& m, int err) {
  SinkSlot& slot = m.sink_slot();
  if (!slot.held) return;
  slot.held = false;
  common::HeldRecord held{slot.seq, slot.offset};
  if (err != 0) {
    if (common::Status s = journal_.VoidAndRelease(held); !s.ok()) ReportJournalError(s, "void");
    slot.last_seq = 0;  // a failed change: nothing for its caller to wait for
    return;
  }
  SetTimesOnBacking(m);
  const MutationInfo& info = m.info();
  bool short_data = IsDataKind(m.kind()) && info.result_length < info.length;
  if (short_data) {
    // A short write (ENOSPC, EFBIG): the record claims more than BACKING got.
    if (common::Status s = journal_.VoidAndRelease(held); !s.ok()) ReportJournalError(s, "void");
    AppendShortWrite(m);
    AppendCorrections(m);
    return;
  }
  AppendCorrections(m);
  if (common::Status s = journal_.Release(held); !s.ok()) ReportJournalError(s, "release");
}

// BACKING's own times would be the kernel's "now" at the syscall; the record carries the
// sink's time, and both sides must agree, so the recorded time is set on BACKING.
void JournalSink::SetTimesOnBacking(const Mutation& m) {
  const MutationInfo& info = m.info();
  const struct timespec t = m.sink_slot().time;
  int err = 0;
  switch (m.kind()) {
    case MutationKind::kCreate:
    case MutationKind::kMknod:
    case MutationKind::kMkdir:
    case MutationKind::kSymlink: {
      int dir = inodes_->Get(info.parent).fd.get();
      err = SetTimes(dir, info.name, kOmit, t);
      if (err == 0) err = SetTimes(dir, "", kOmit, t);
      break;
    }
    case MutationKind::kLink:
      err = SetTimes(inodes_->Get(info.new_parent).fd.get(), "", kOmit, t);
      break;
    case MutationKind::kUnlink:
    case MutationKind::kRmdir:
      err = SetTimes(inodes_->Get(info.parent).fd.get(), "", kOmit, t);
      break;
    case MutationKind::kRename:
      err = SetTimes(inodes_->Get(info.parent).fd.get(), "", kOmit, t);
      if (err == 0 && info.new_parent != info.parent) {
        err = SetTimes(inodes_->Get(info.new_parent).fd.get(), "", kOmit, t);
      }
      break;
    case MutationKind::kWrite:
    case MutationKind::kCopyFileRange:
    case MutationKind::kTruncate:
    case MutationKind::kTruncateOnOpen:
    case MutationKind::kFallocate:
      // The open fd, where the op has one, spares the kernel a lookup of the empty path.
      if (info.fd >= 0) {
        const struct timespec tv[2] = {kOmit, t};
        err = futimens(info.fd, tv) == 0 ? 0 : errno;
      } else {
        err = SetTimes(inodes_->Get(info.ino).fd.get(), "", kOmit, t);
      }
      break;
    case MutationKind::kUtimens: {
      // The caller's utimensat ran with UTIME_NOW; the record has the sink's time.
      int to_set = static_cast<int>(info.flags);
      if (to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) {
        struct timespec atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? t : kOmit;
        struct timespec mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? t : kOmit;
        err = SetTimes(inodes_->Get(info.ino).fd.get(), "", atime, mtime);
      }
      break;
    }
    default:  // chmod, chown, xattrs: no times in the record
      break;
  }
  if (err != 0) {
    error_log.Warn(std::string("could not set the recorded time after a ") +
                   MutationKindName(m.kind()) + ": " + std::strerror(err) +
                   "; the image's mtime may differ");
  }
}

// Where BACKING decided what the record predicted (owner, group, mode of a new node; the
// mode after a chown), a differing decision is journaled as a chown to BACKING's values.
void JournalSink::AppendCorrections(const Mutation& m) {
  const SinkSlot& slot = m.sink_slot();
  if (!slot.check_node) return;
  const MutationInfo& info = m.info();
  const bool new_node = IsNewNodeKind(m.kind());
  struct stat st;
  int rc = new_node ? fstatat(inodes_->Get(info.parent).fd.get(), info.name.c_str(), &st,
                              AT_SYMLINK_NOFOLLOW)
                    : fstatat(inodes_->Get(info.ino).fd.get(), "", &st,
                              AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return;
  bool mode_differs = !S_ISLNK(st.st_mode) && st.st_mode != slot.mode;
  if (st.st_uid == slot.uid && st.st_gid == slot.gid && !mode_differs) return;
  auto path = inodes_->PathOf(new_node ? info.parent : info.ino);
  if (!path.ok()) return;
  if (new_node) *path = JoinEntryPath(*path, info.name);
  Append(m, common::ChownOp{*path, st.st_uid, st.st_gid, static_cast<uint32_t>(st.st_mode & 07777)},
         "owner correction");
}

void JournalSink::AppendShortWrite(const Mutation& m) {
  const MutationInfo& info = m.info();
  if (info.result_length == 0) return;
  auto path = inodes_->PathOf(info.ino);
  if (!path.ok()) return;
  Append(
      m,
      common::WriteOp{*path, static_cast<uint64_t>(info.offset), ToRecordTime(m.sink_slot().time),
                      std::string_view(info.data, info.result_length)},
      "short write");
}

void JournalSink::Append(const Mutation& m, const common::Op& op, const char* what) {
  auto seq = journal_.Append(op);
  if (!seq.ok()) return ReportJournalError(seq.status(), what);
  m.sink_slot().last_seq = std::max(m.sink_slot().last_seq, *seq);
}

void JournalSink::Settle(const Mutation& m) {
  const uint64_t seq = m.sink_slot().last_seq;
  if (mirror_ == nullptr || seq == 0) return;
  mirror_->Notify();
  mirror_->AwaitWriter(seq);
}

void JournalSink::ReportJournalError(const common::Status& status, const char* what) {
  journal_errors_.fetch_add(1, std::memory_order_relaxed);
  error_log.Warn(std::string("journal ") + what + " failed: " + status.ToString());
}

}  // namespace mirror::fs
