// The workload runner: setup, the per-thread op loop, counting and tracing.
#include "workload.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "workload_worker.h"

namespace mirror::itest {
namespace workload_internal {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Relative weights of the ops; every kind has a chance in every run of a few hundred
// ops. Data ops dominate, as in real use, but namespace churn is frequent enough that
// kept fds and links meet renames and unlinks.
constexpr unsigned kWeights[kWorkOpCount] = {
    /*kCreate*/ 4,
    /*kWrite*/ 10,
    /*kAppend*/ 5,
    /*kTruncate*/ 4,
    /*kPunchHole*/ 3,
    /*kZeroRange*/ 2,
    /*kAllocKeepSize*/ 2,
    /*kAllocExtend*/ 2,
    /*kCopyRange*/ 3,
    /*kRenameFile*/ 5,
    /*kRenameDir*/ 3,
    /*kRenameNoReplace*/ 2,
    /*kRenameExchange*/ 3,
    /*kLink*/ 3,
    /*kSymlink*/ 2,
    /*kUnlink*/ 6,
    /*kMkdir*/ 4,
    /*kRmdir*/ 3,
    /*kChmod*/ 3,
    /*kChown*/ 2,
    /*kUtimens*/ 3,
    /*kSetxattr*/ 4,
    /*kRemovexattr*/ 3,
    /*kMkfifo*/ 2,
    /*kMknod*/ 2,
    /*kSharedWrite*/ 4,
    /*kKeepOpen*/ 2,
    /*kKeptWrite*/ 4,
    /*kKeptClose*/ 1,
    /*kFdAfterRename*/ 2,
    /*kFdAfterReuse*/ 2,
    /*kCreateAsUser*/ 3,
    /*kAcl*/ 3,
    /*kMmapWrite*/ 2,
};

constexpr off_t kSharedStripe = 64 * 1024;

// Ops that keep their meaning as another user: not the checked scenarios and the mmap
// op (their files are root's), nor kCreateAsUser (which switches by itself).
bool AsUserAllowed(WorkOp op) {
  return op != WorkOp::kFdAfterRename && op != WorkOp::kFdAfterReuse && op != WorkOp::kMmapWrite &&
         op != WorkOp::kCreateAsUser;
}

Outcome MkdirOk(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0) return Fail("mkdir");
  return {};
}

// The fixed part of the layout (see workload.h), made through `root` itself.
std::string Setup(const WorkloadOptions& o) {
  std::vector<std::string> dirs = {"s"};
  for (int d = 0; d < 4; ++d) dirs.push_back("s/d" + std::to_string(d));
  for (int t = 0; t < o.threads; ++t) {
    std::string p = "p" + std::to_string(t);
    dirs.insert(dirs.end(), {p, p + "/a", p + "/b"});
  }
  for (const std::string& d : dirs) {
    Outcome out = MkdirOk(o.root + "/" + d);
    if (out.err != 0) return "setup: mkdir " + d + ": " + ErrnoName(out.err);
  }
  // Other users may create files in s/d3 (until a random chmod says otherwise).
  if (chmod((o.root + "/s/d3").c_str(), 01777) != 0)
    return "setup: chmod s/d3: " + ErrnoName(errno);
  int fd = open((o.root + "/s/shared").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return "setup: create s/shared: " + ErrnoName(errno);
  off_t size = std::max<off_t>(1 << 20, kSharedStripe * o.threads);
  int rc = ftruncate(fd, size);
  int err = errno;
  close(fd);
  if (rc != 0) return "setup: ftruncate s/shared: " + ErrnoName(err);
  return "";
}

}  // namespace

Rng::Rng(uint64_t seed, int thread)
    : gen_(SplitMix64(SplitMix64(seed) ^ (0x51ed2701u + static_cast<uint64_t>(thread)))) {}

std::string Rng::Bytes(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = gen_();
    memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

Outcome Fail(const char* step) { return Outcome{errno == 0 ? EIO : errno, step}; }

bool IsMountGone(int err) { return err == ENOTCONN || err == ECONNABORTED; }

Outcome PutFile(const std::string& path, const std::string& bytes, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, mode);
  if (fd < 0) return Fail("open");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      Outcome out = Fail("write");
      close(fd);
      return out;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return Fail("close");
  return {};
}

bool GetFile(const std::string& path, std::string* out) {
  out->clear();
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      errno = err;
      return n == 0;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

Worker::Worker(Shared* shared, int thread)
    : shared_(shared),
      thread_(thread),
      root_(shared->options->root),
      rng_(shared->options->seed, thread) {
  shared_fd_ = open(Abs("s/shared").c_str(), O_RDWR | O_CLOEXEC);
}

Worker::~Worker() {
  for (const KeptFd& k : kept_) close(k.fd);
  if (shared_fd_ >= 0) close(shared_fd_);
}

WorkOp Worker::PickOp() {
  unsigned total = 0;
  for (unsigned w : kWeights) total += w;
  for (;;) {
    uint64_t r = rng_.Below(total);
    size_t i = 0;
    while (r >= kWeights[i]) r -= kWeights[i++];
    WorkOp op = static_cast<WorkOp>(i);
    if ((op == WorkOp::kChown || op == WorkOp::kCreateAsUser) && !shared_->options->privileged) {
      continue;
    }
    if ((op == WorkOp::kKeptWrite || op == WorkOp::kKeptClose) && kept_.empty()) {
      return WorkOp::kKeepOpen;
    }
    return op;
  }
}

void Worker::Run() {
  const WorkloadOptions& o = *shared_->options;
  for (index_ = 0; index_ < static_cast<uint64_t>(o.ops_per_thread); ++index_) {
    if (shared_->lost.load()) break;
    if (Clock::now() >= shared_->deadline) {
      shared_->timed_out = true;
      break;
    }
    WorkOp op = PickOp();
    // Now and then an op runs as another user: permission checks, and owners of what
    // it creates, as the kernel decides them for that caller.
    bool as_user = o.privileged && o.as_user_percent > 0 && AsUserAllowed(op) &&
                   rng_.Percent(static_cast<unsigned>(o.as_user_percent));
    uint32_t id = as_user ? rng_.Pick(kOtherUsers) : 0;
    std::string what;
    Outcome out;
    {
      std::optional<ThreadCreds> creds;
      if (as_user) creds.emplace(id);
      errno = 0;
      out = creds && creds->error() != 0 ? Outcome{creds->error(), "setresuid"} : Do(op, &what);
    }
    if (as_user) what += " [as " + std::to_string(id) + "]";
    Count(op, index_, what, out);
    ++ops;
    if (o.progress != nullptr) o.progress->fetch_add(1, std::memory_order_relaxed);
  }
}

Outcome Worker::Do(WorkOp op, std::string* what) {
  // clang-format off
  switch (op) {
    case WorkOp::kCreate: return Create(what);
    case WorkOp::kWrite: return Write(what);
    case WorkOp::kAppend: return Append(what);
    case WorkOp::kTruncate: return Truncate(what);
    case WorkOp::kPunchHole:
    case WorkOp::kZeroRange:
    case WorkOp::kAllocKeepSize:
    case WorkOp::kAllocExtend: return Fallocate(op, what);
    case WorkOp::kCopyRange: return CopyRange(what);
    case WorkOp::kRenameFile:
    case WorkOp::kRenameDir:
    case WorkOp::kRenameNoReplace:
    case WorkOp::kRenameExchange: return Rename(op, what);
    case WorkOp::kLink: return Link(what);
    case WorkOp::kSymlink: return Symlink(what);
    case WorkOp::kUnlink:
    case WorkOp::kMkdir:
    case WorkOp::kRmdir:
    case WorkOp::kMkfifo:
    case WorkOp::kMknod: return MakeOrRemove(op, what);
    case WorkOp::kChmod: return Chmod(what);
    case WorkOp::kChown: return Chown(what);
    case WorkOp::kUtimens: return Utimens(what);
    case WorkOp::kSetxattr:
    case WorkOp::kRemovexattr: return Xattr(op, what);
    case WorkOp::kSharedWrite: return SharedWrite(what);
    case WorkOp::kKeepOpen: return KeepOpen(what);
    case WorkOp::kKeptWrite: return KeptWrite(what);
    case WorkOp::kKeptClose: return KeptClose(what);
    case WorkOp::kFdAfterRename: return FdAfterRename(what);
    case WorkOp::kFdAfterReuse: return FdAfterReuse(what);
    case WorkOp::kAcl: return Acl(what);
    case WorkOp::kMmapWrite: return MmapWrite(what);
    case WorkOp::kCreateAsUser: return CreateAsUser(what);
    case WorkOp::kCount: break;
  }
  // clang-format on
  return Outcome{EINVAL, "unknown op"};
}

void Worker::Count(WorkOp op, uint64_t index, const std::string& what, const Outcome& out) {
  OpCounts& c = counts[static_cast<size_t>(op)];
  if (out.err == 0) {
    ++c.ok;
  } else {
    ++c.errors[out.err];
  }
  // EIO may be the first sign of a dead daemon (a flush or release in flight): tell by
  // asking the mount itself.
  struct stat st;
  if (IsMountGone(out.err) ||
      (out.err == EIO && stat(root_.c_str(), &st) != 0 && IsMountGone(errno))) {
    shared_->lost = true;
  }
  if (!shared_->options->trace) return;
  std::string line = "t" + std::to_string(thread_) + "#" + std::to_string(index) + " " +
                     WorkOpName(op) + " " + what + " = ";
  line += out.err == 0 ? std::string("ok") : ErrnoName(out.err) + "(" + out.step + ")";
  trace.push_back(std::move(line));
}

void Worker::Violation(const char* scenario, const std::string& text) {
  violations.push_back("seed=" + std::to_string(shared_->options->seed) +
                       " thread=" + std::to_string(thread_) + " op=" + std::to_string(index_) +
                       " " + scenario + ": " + text);
}

std::string Worker::PickDir() {
  std::string d = "s/d" + std::to_string(rng_.Below(4));
  if (rng_.Percent(40)) d += "/sub" + std::to_string(rng_.Below(3));
  return d;
}

std::string Worker::PickSubdir() {
  std::string d = "s/d" + std::to_string(rng_.Below(4));
  // e<N> dirs never get files of their own (PickDir never returns them), so rmdir and
  // rename over them succeed often; sub<N> dirs fill up.
  return rng_.Percent(40) ? d + "/e" + std::to_string(rng_.Below(2))
                          : d + "/sub" + std::to_string(rng_.Below(3));
}

// The operands of + are unsequenced: every draw is its own statement, so that a seed
// means the same choices whatever the compiler.
std::string Worker::PickFile() {
  std::string dir = PickDir();
  return dir + "/f" + std::to_string(rng_.Below(8));
}

std::string Worker::PickXattrNode() {
  // A small pool, so that set and remove meet the same names.
  if (rng_.Percent(8)) return ".";
  std::string d = "s/d" + std::to_string(rng_.Below(4));
  return rng_.Percent(30) ? d : d + "/f0";
}

std::string Worker::PickNode() {
  if (rng_.Percent(4)) return ".";
  uint64_t r = rng_.Below(8);
  if (r < 6) return PickFile();
  return r == 6 ? PickSubdir() : "s/d" + std::to_string(rng_.Below(4));
}

uint64_t Worker::Offset() {
  uint64_t p = rng_.Below(100);
  if (p < 80) return rng_.Below(128 << 10);
  if (p < 97) return rng_.Below(1 << 20);
  return rng_.Below(4 << 20);
}

size_t Worker::Length() {
  uint64_t p = rng_.Below(100);
  if (p < 70) return 1 + rng_.Below(4096);
  if (p < 96) return 1 + rng_.Below(64 << 10);
  return 1 + rng_.Below(512 << 10);
}

}  // namespace workload_internal

WorkloadResult RunWorkload(const WorkloadOptions& options) {
  using namespace workload_internal;
  WorkloadResult result;
  if (options.threads < 1 || options.threads > 32) {
    result.setup_error = "threads must be 1..32";
    return result;
  }
  if (options.setup) result.setup_error = Setup(options);
  if (!result.setup_error.empty()) return result;
  Shared shared;
  shared.options = &options;
  shared.deadline = Clock::now() + options.max_time;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < options.threads; ++t) workers.push_back(std::make_unique<Worker>(&shared, t));
  {
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });
    for (std::thread& t : threads) t.join();
  }
  for (auto& w : workers) {
    for (size_t i = 0; i < kWorkOpCount; ++i) {
      result.by_op[i].ok += w->counts[i].ok;
      for (const auto& [err, n] : w->counts[i].errors) result.by_op[i].errors[err] += n;
    }
    result.ops += w->ops;
    result.violations.insert(result.violations.end(), w->violations.begin(), w->violations.end());
    result.traces.push_back(std::move(w->trace));
  }
  result.mount_lost = shared.lost.load();
  result.timed_out = shared.timed_out.load();
  return result;
}

}  // namespace mirror::itest
