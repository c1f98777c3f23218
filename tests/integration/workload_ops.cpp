// The workload's data ops: writes, appends, truncates, fallocate, copy_file_range, the
// shared file and the kept fds. Every open of a random name is O_NONBLOCK, so that a
// fifo or socket that took the name fails at once instead of blocking the thread.
#include <execinfo.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "workload_worker.h"

namespace mirror::itest::workload_internal {
namespace {

constexpr int kOpenFlags = O_NONBLOCK | O_CLOEXEC;

// Closes `fd`, keeping an earlier failure (close of a FUSE file can fail too: flush).
Outcome CloseKeeping(int fd, Outcome out) {
  if (close(fd) != 0 && out.err == 0) return Fail("close");
  return out;
}

// A store into a FUSE mapping faults the page in with a read request; once the daemon is
// dead (the kill case) that read fails and the store raises SIGBUS. The handler jumps
// back out of the store of the thread that armed it; any other SIGBUS stays deadly.
thread_local sigjmp_buf* t_sigbus_jump = nullptr;

void OnSigbus(int sig, siginfo_t* info, void*) {
  if (t_sigbus_jump != nullptr) siglongjmp(*t_sigbus_jump, 1);
  char msg[96];
  int n = snprintf(msg, sizeof(msg), "workload: SIGBUS at %p outside a guarded store\n",
                   info != nullptr ? info->si_addr : nullptr);
  if (n > 0 && write(2, msg, static_cast<size_t>(n)) < 0) n = 0;
  void* frames[32];
  backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
  signal(sig, SIG_DFL);
  raise(sig);
}

bool StoreCatchingSigbus(char* to, const std::string& data) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction sa = {};
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, nullptr);
  });
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    t_sigbus_jump = nullptr;
    return false;
  }
  t_sigbus_jump = &jump;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // armed before the first store
  memcpy(to, data.data(), data.size());
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_sigbus_jump = nullptr;
  return true;
}

Outcome PwriteAll(int fd, const std::string& data, uint64_t off) {
  ssize_t n = pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
  if (n < 0) return Fail("pwrite");
  return {};
}

}  // namespace

Outcome Worker::Create(std::string* what) {
  static constexpr mode_t kModes[] = {0644, 0600, 0755, 0640, 0666, 04755};
  std::string path = PickFile();
  int flags = O_WRONLY | O_CREAT | kOpenFlags;
  if (rng_.Percent(30)) flags |= O_TRUNC;
  if (rng_.Percent(20)) flags |= O_EXCL;
  mode_t mode = rng_.Pick(kModes);
  size_t len = rng_.Percent(50) ? 1 + rng_.Below(512) : 0;
  *what = path + " flags=" + Hex(static_cast<uint64_t>(flags)) + " mode=" + Hex(mode) +
          " len=" + std::to_string(len);
  int fd = open(Abs(path).c_str(), flags, mode);
  if (fd < 0) return Fail("open");
  Outcome out;
  if (len > 0) out = PwriteAll(fd, rng_.Bytes(len), 0);
  return CloseKeeping(fd, out);
}

Outcome Worker::Write(std::string* what) {
  std::string path = PickFile();
  uint64_t off = Offset();
  size_t len = Length();
  bool direct = rng_.Percent(10);
  bool sync = rng_.Percent(10);
  if (direct) {  // O_DIRECT wants aligned offsets, lengths and buffers
    off &= ~uint64_t{4095};
    len = std::min<size_t>((len + 4095) & ~size_t{4095}, 256 << 10);
  }
  std::string data = rng_.Bytes(len);
  *what = path + " off=" + std::to_string(off) + " len=" + std::to_string(len) +
          (direct ? " O_DIRECT" : "") + (sync ? " fsync" : "");
  int flags = O_WRONLY | O_CREAT | kOpenFlags | (direct ? O_DIRECT : 0);
  int fd = open(Abs(path).c_str(), flags, 0644);
  if (fd < 0) return Fail("open");
  Outcome out;
  if (direct) {
    void* buf = std::aligned_alloc(4096, len);
    memcpy(buf, data.data(), len);
    if (pwrite(fd, buf, len, static_cast<off_t>(off)) < 0) out = Fail("pwrite");
    std::free(buf);
  } else {
    out = PwriteAll(fd, data, off);
  }
  if (out.err == 0 && sync && fsync(fd) != 0) out = Fail("fsync");
  return CloseKeeping(fd, out);
}

// Only on files no other thread can shrink (a store past EOF is SIGBUS): s/shared,
// which keeps its size and takes every thread's pwrites at the same time, or this
// thread's own p<t>/b/mm, which it resizes first.
Outcome Worker::MmapWrite(std::string* what) {
  bool own = rng_.Percent(50);
  std::string path = own ? "p" + std::to_string(thread_) + "/b/mm" : "s/shared";
  uint64_t a = rng_.Next();
  size_t want = 1 + rng_.Below(16 << 10);
  uint64_t resize = 1 + rng_.Below(256 << 10);
  *what = path;
  int fd = open(Abs(path).c_str(), O_RDWR | (own ? O_CREAT : 0) | kOpenFlags, 0644);
  if (fd < 0) return Fail("open");
  if (own) {
    *what += " size=" + std::to_string(resize);
    if (ftruncate(fd, static_cast<off_t>(resize)) != 0) return CloseKeeping(fd, Fail("ftruncate"));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return CloseKeeping(fd, Fail("fstat"));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || size == 0) {
    *what += " (empty or not a file: skipped)";
    return CloseKeeping(fd, {});
  }
  uint64_t page_off = (a % size) & ~uint64_t{4095};
  size_t in_page = static_cast<size_t>((a >> 32) % std::min<uint64_t>(4096, size - page_off));
  size_t len = std::min<size_t>(want, static_cast<size_t>(size - page_off) - in_page);
  *what += " off=" + std::to_string(page_off + in_page) + " len=" + std::to_string(len);
  size_t map_len = in_page + len;
  void* map =
      mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(page_off));
  if (map == MAP_FAILED) return CloseKeeping(fd, Fail("mmap"));
  std::string data = rng_.Bytes(len);
  Outcome out;
  if (!StoreCatchingSigbus(static_cast<char*>(map) + in_page, data)) {
    out = Outcome{EIO, "store (SIGBUS)"};
  } else if (msync(map, map_len, MS_SYNC) != 0) {
    out = Fail("msync");
  }
  munmap(map, map_len);
  return CloseKeeping(fd, out);
}

Outcome Worker::Append(std::string* what) {
  std::string path = PickFile();
  uint64_t writes = 1 + rng_.Below(3);
  *what = path + " writes=" + std::to_string(writes);
  int fd = open(Abs(path).c_str(), O_WRONLY | O_APPEND | O_CREAT | kOpenFlags, 0644);
  if (fd < 0) return Fail("open");
  Outcome out;
  for (uint64_t i = 0; i < writes && out.err == 0; ++i) {
    size_t len = 1 + rng_.Below(8192);
    *what += " len=" + std::to_string(len);
    std::string data = rng_.Bytes(len);
    if (write(fd, data.data(), data.size()) < 0) out = Fail("write");
  }
  return CloseKeeping(fd, out);
}

Outcome Worker::Truncate(std::string* what) {
  std::string path = PickFile();
  bool by_path = rng_.Percent(50);
  bool shrink = rng_.Percent(50);
  uint64_t pick = rng_.Next();
  struct stat st;
  if (stat(Abs(path).c_str(), &st) != 0) {
    *what = path;
    return Fail("stat");
  }
  uint64_t cur = static_cast<uint64_t>(st.st_size);
  uint64_t size = shrink ? pick % (cur + 1) : cur + 1 + pick % (256 << 10);
  *what = path + (by_path ? " truncate " : " ftruncate ") + std::to_string(cur) + "->" +
          std::to_string(size);
  if (by_path) {
    if (truncate(Abs(path).c_str(), static_cast<off_t>(size)) != 0) return Fail("truncate");
    return {};
  }
  int fd = open(Abs(path).c_str(), O_WRONLY | kOpenFlags);
  if (fd < 0) return Fail("open");
  Outcome out;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) out = Fail("ftruncate");
  return CloseKeeping(fd, out);
}

Outcome Worker::Fallocate(WorkOp op, std::string* what) {
  std::string path = PickFile();
  bool aligned = rng_.Percent(50);
  bool keep = rng_.Percent(50);
  uint64_t a = rng_.Next(), b = rng_.Next();
  *what = path;
  int fd = open(Abs(path).c_str(), O_WRONLY | kOpenFlags);
  if (fd < 0) return Fail("open");
  struct stat st;
  if (fstat(fd, &st) != 0) return CloseKeeping(fd, Fail("fstat"));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  int mode = 0;
  uint64_t off = 0, len = 0;
  switch (op) {
    case WorkOp::kPunchHole:
      mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
      off = a % (size + 1);
      len = 1 + b % std::max<uint64_t>(size - off + 4096, 1);
      break;
    case WorkOp::kZeroRange:
      mode = FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0);
      off = a % (size + (64 << 10));
      len = 1 + b % (128 << 10);
      break;
    case WorkOp::kAllocKeepSize:
      mode = FALLOC_FL_KEEP_SIZE;
      off = keep ? size + a % (64 << 10) : a % (size + 1);
      len = 1 + b % (256 << 10);
      break;
    default:  // kAllocExtend
      off = a % (size + (128 << 10));
      len = 1 + b % (128 << 10);
      break;
  }
  if (aligned) {
    off &= ~uint64_t{4095};
    len = (len + 4095) & ~uint64_t{4095};
  }
  *what += " mode=" + Hex(static_cast<uint64_t>(mode)) + " off=" + std::to_string(off) +
           " len=" + std::to_string(len) + " size=" + std::to_string(size);
  Outcome out;
  if (fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
    out = Fail("fallocate");
  }
  return CloseKeeping(fd, out);
}

Outcome Worker::CopyRange(std::string* what) {
  std::string src = PickFile(), dst = PickFile();
  loff_t off_in = static_cast<loff_t>(rng_.Below(256 << 10));
  loff_t off_out = static_cast<loff_t>(Offset());
  size_t len = 1 + rng_.Below(128 << 10);
  *what = src + "@" + std::to_string(off_in) + " -> " + dst + "@" + std::to_string(off_out) +
          " len=" + std::to_string(len);
  int in = open(Abs(src).c_str(), O_RDONLY | kOpenFlags);
  if (in < 0) return Fail("open src");
  int out_fd = open(Abs(dst).c_str(), O_WRONLY | O_CREAT | kOpenFlags, 0644);
  if (out_fd < 0) return CloseKeeping(in, Fail("open dst"));
  Outcome out;
  ssize_t n = copy_file_range(in, &off_in, out_fd, &off_out, len, 0);
  if (n < 0)
    out = Fail("copy_file_range");
  else
    *what += " copied=" + std::to_string(n);
  out = CloseKeeping(out_fd, out);
  return CloseKeeping(in, out);
}

Outcome Worker::SharedWrite(std::string* what) {
  bool own_stripe = rng_.Percent(60);
  size_t len = own_stripe ? 1 + rng_.Below(8192) : 1 + rng_.Below(32 << 10);
  constexpr uint64_t kStripe = 64 << 10;
  uint64_t off = own_stripe ? kStripe * static_cast<uint64_t>(thread_) + rng_.Below(kStripe - len)
                            : rng_.Below(1 << 20);
  *what = std::string(own_stripe ? "stripe" : "overlap") + " off=" + std::to_string(off) +
          " len=" + std::to_string(len);
  if (shared_fd_ < 0) return Outcome{EBADF, "open s/shared at start"};
  return PwriteAll(shared_fd_, rng_.Bytes(len), off);
}

Outcome Worker::KeepOpen(std::string* what) {
  std::string path = PickFile();
  bool create = rng_.Percent(30);
  *what = path + (create ? " O_CREAT" : "");
  if (kept_.size() >= 4) {
    *what += " (closed " + kept_.front().opened_as + ")";
    close(kept_.front().fd);
    kept_.erase(kept_.begin());
  }
  int fd = open(Abs(path).c_str(), O_RDWR | (create ? O_CREAT : 0) | kOpenFlags, 0644);
  if (fd < 0) return Fail("open");
  kept_.push_back(KeptFd{fd, path});
  return {};
}

Outcome Worker::KeptWrite(std::string* what) {
  const KeptFd& k = kept_[rng_.Below(kept_.size())];
  bool truncate_it = rng_.Percent(20);
  uint64_t off = rng_.Below(256 << 10);
  *what = "fd of " + k.opened_as;
  if (truncate_it) {
    *what += " ftruncate " + std::to_string(off);
    if (ftruncate(k.fd, static_cast<off_t>(off)) != 0) return Fail("ftruncate");
    return {};
  }
  size_t len = Length();
  *what += " off=" + std::to_string(off) + " len=" + std::to_string(len);
  return PwriteAll(k.fd, rng_.Bytes(len), off);
}

// setresuid/setresgid through the raw syscalls change only the calling thread's
// credentials (glibc's wrappers change every thread's); the saved uid stays 0, so the
// thread can return to root.
ThreadCreds::ThreadCreds(uint32_t id) {
  if (syscall(SYS_setresgid, -1, id, -1) != 0) {
    error_ = errno;
  } else if (syscall(SYS_setresuid, -1, id, -1) != 0) {
    error_ = errno;
    syscall(SYS_setresgid, -1, 0, -1);
  }
}

ThreadCreds::~ThreadCreds() {
  if (error_ != 0) return;
  // Back to root; without it every later op of this thread would be wrong.
  if (syscall(SYS_setresuid, -1, 0, -1) != 0 || syscall(SYS_setresgid, -1, 0, -1) != 0) abort();
}

Outcome Worker::CreateAsUser(std::string* what) {
  uint32_t id = rng_.Pick(kOtherUsers);
  // u<N> names are only ever made here, so a user finds its own file again; f<N> names
  // meet everything else (and mostly root's files: EACCES).
  std::string path = "s/d3";
  if (rng_.Percent(30)) path += "/sub" + std::to_string(rng_.Below(3));
  path += rng_.Percent(50) ? "/u" + std::to_string(rng_.Below(4))
                           : "/f" + std::to_string(rng_.Below(8));
  size_t len = 1 + rng_.Below(2048);
  std::string data = rng_.Bytes(len);
  *what = path + " as=" + std::to_string(id) + " len=" + std::to_string(len);
  ThreadCreds as(id);
  if (as.error() != 0) return Outcome{as.error(), "setresuid"};
  int fd = open(Abs(path).c_str(), O_WRONLY | O_CREAT | kOpenFlags, 0664);
  if (fd < 0) return Fail("open");
  return CloseKeeping(fd, PwriteAll(fd, data, 0));
}

Outcome Worker::KeptClose(std::string* what) {
  size_t i = rng_.Below(kept_.size());
  *what = "fd of " + kept_[i].opened_as;
  int fd = kept_[i].fd;
  kept_.erase(kept_.begin() + static_cast<std::ptrdiff_t>(i));
  if (close(fd) != 0) return Fail("close");
  return {};
}

}  // namespace mirror::itest::workload_internal
