// A seeded, random, multi-threaded filesystem workload for the journal equivalence
// test (issue 3): it runs against a directory (a FUSE mount or a plain directory) and
// makes every kind of change a client can make, with names drawn from small pools so
// that threads race on the same entries.
//
//   WorkloadOptions o{.root = mnt, .seed = 7, .threads = 4};
//   WorkloadResult r = RunWorkload(o);
//   CHECK(r.violations.empty());  // fd semantics the workload checks itself
//
// Layout under `root` (made by the setup step, through `root` itself, so a journal
// sees it): s/d0..s/d3, each with up to sub0..sub2 and e0..e1 (dirs come and go; e<N>
// never get files of their own), files f0..f7 in s/d<N> and s/d<N>/sub<N>, s/shared
// (the file every thread writes at once), and p<t>/a, p<t>/b per thread t (private:
// only thread t touches them, for the checked fd scenarios).
// Symlink targets are relative and never leave s/. chmod, utimens and xattr ops also
// hit the root itself (".") now and then.
//
// Reproducing: every op is traced as "t<thread>#<index> <kind> <args> = <result>". A
// thread's choices come only from its own RNG stream (derived from seed and thread
// number; no two draws share an unsequenced expression, so this holds across compilers),
// so with threads == 1 a seed replays exactly (same trace, same tree); with
// more threads the interleaving differs from run to run but each thread's choices
// given the same results are the same.
//
// Errors a racing thread causes (ENOENT, EEXIST, ENOTEMPTY, EINVAL for a dir renamed
// into itself, ...) are normal: they are counted per op kind and errno. ENOTCONN or
// ECONNABORTED (the FUSE daemon died), or EIO while the root answers so, end every
// thread cleanly (mount_lost); so does a store into a mapping of the dead mount (the
// SIGBUS is caught and counted as EIO).
//
// Process-wide side effects: the first kMmapWrite installs a SIGBUS handler (a SIGBUS
// outside its guarded store still ends the process, after printing a backtrace);
// kCreateAsUser switches the calling thread's credentials with the raw setresuid/
// setresgid syscalls (glibc's wrappers would switch every thread) and back to root.
//
// Thread-safety: RunWorkload starts and joins its own threads; `progress`, if given,
// is incremented (relaxed) after every op and may be read from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mirror::itest {

enum class WorkOp : uint8_t {
  kCreate,           // open O_CREAT (sometimes O_TRUNC / O_EXCL), random mode
  kWrite,            // pwrite at a random, often sparse, offset (up to a few MiB); now
                     // and then O_DIRECT (aligned) or followed by fsync
  kAppend,           // O_APPEND writes
  kTruncate,         // truncate (path) or ftruncate, growing or shrinking
  kPunchHole,        // fallocate PUNCH_HOLE | KEEP_SIZE
  kZeroRange,        // fallocate ZERO_RANGE, with or without KEEP_SIZE
  kAllocKeepSize,    // fallocate KEEP_SIZE (preallocation past EOF)
  kAllocExtend,      // fallocate mode 0 (may grow the file)
  kCopyRange,        // copy_file_range between two files
  kRenameFile,       // rename a non-directory, across dirs, maybe over an existing one
  kRenameDir,        // rename a directory, maybe over an empty one
  kRenameNoReplace,  // renameat2 RENAME_NOREPLACE
  kRenameExchange,   // renameat2 RENAME_EXCHANGE (files with files, dirs with dirs)
  kLink,             // hard link
  kSymlink,          // relative target inside s/ (or dangling)
  kUnlink,
  kMkdir,
  kRmdir,
  kChmod,     // incl. setuid/setgid/sticky bits, files and dirs
  kChown,     // uid/gid among a few, or unchanged; sometimes of a symlink itself
  kUtimens,   // explicit times, UTIME_NOW, UTIME_OMIT, NULL; sometimes NOFOLLOW
  kSetxattr,  // user.* (and trusted.*) names, XATTR_CREATE / XATTR_REPLACE
  kRemovexattr,
  kMkfifo,
  kMknod,        // sockets, and the char device 1:3
  kSharedWrite,  // s/shared: this thread's own stripe or anywhere (overlapping)
  kKeepOpen,     // open a file and keep the fd (other threads may rename/unlink it)
  kKeptWrite,    // write or ftruncate through a kept fd, wherever its file is now
  kKeptClose,
  kFdAfterRename,  // checked: a write through an fd lands in the renamed file
  kFdAfterReuse,   // checked: a write through an fd of an unlinked (or replaced) name
                   // never reaches the new file of that name
  kCreateAsUser,   // create and write a file (f<N>, or u<N>: only made here) in s/d3
                   // (1777 from the setup on) as uid/gid 1000 or 65534
  kAcl,            // POSIX ACLs: access ACLs (changing the mode too), default ACLs on
                   // dirs (inherited by what is created there), or their removal
  kMmapWrite,      // store through a MAP_SHARED mapping, then msync (s/shared, or a
                   // file of this thread's own: no other thread may shrink it)
  kCount
};
inline constexpr size_t kWorkOpCount = static_cast<size_t>(WorkOp::kCount);
const char* WorkOpName(WorkOp op);

struct WorkloadOptions {
  std::string root;  // existing, empty directory to work in
  uint64_t seed = 1;
  int threads = 1;                            // 1..32
  int ops_per_thread = 300;                   // bound on op count (setup not included)
  std::chrono::milliseconds max_time{30000};  // bound on wall time for the ops
  // Root-only ops: chown, and creating files as another uid (kCreateAsUser).
  bool privileged = true;
  // With `privileged`: the share of the other ops run as uid/gid 1000 or 65534.
  int as_user_percent = 8;
  bool trace = true;  // keep every op's trace line
  // false: the layout exists already (a second run over the same tree, with at most
  // as many threads as the run that made it).
  bool setup = true;
  std::atomic<uint64_t>* progress = nullptr;  // ops completed so far (all threads)
};

struct OpCounts {
  uint64_t ok = 0;
  std::map<int, uint64_t> errors;  // errno -> count
};

struct WorkloadResult {
  std::array<OpCounts, kWorkOpCount> by_op;
  uint64_t ops = 0;         // ops attempted, all threads
  bool mount_lost = false;  // some op saw ENOTCONN / ECONNABORTED
  bool timed_out = false;   // max_time ended some thread early
  std::string setup_error;  // non-empty: the layout could not be made
  // Checked fd scenarios that went wrong, each with seed, thread and op index.
  std::vector<std::string> violations;
  std::vector<std::vector<std::string>> traces;  // per thread, in op order

  uint64_t Errors(int err) const;  // count of `err` over all ops
  uint64_t TotalOk() const;
  // A table: one line per op kind with ok and error counts (errno names).
  std::string Summary() const;
  // All traces, thread by thread (or only the last `tail` lines of each).
  std::string TraceText(size_t tail = 0) const;
};

// Runs the setup, then the ops on `threads` threads, and joins them. Never throws.
WorkloadResult RunWorkload(const WorkloadOptions& options);

// "ENOENT" etc. (or the number when unknown).
std::string ErrnoName(int err);

}  // namespace mirror::itest
