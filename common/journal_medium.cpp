#include "common/journal_medium.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mirror::common {
namespace {

std::string Range(uint64_t offset, uint64_t n) {
  return "[" + std::to_string(offset) + ", " + std::to_string(offset + n) + ")";
}

Status CheckRange(uint64_t offset, uint64_t n, uint64_t size, const std::string& name) {
  if (offset > size || n > size - offset) {
    return Status::InvalidArgument("range " + Range(offset, n) + " is outside " + name + " (" +
                                   std::to_string(size) + " bytes)");
  }
  return {};
}

uint64_t TotalSize(std::span<const std::string_view> pieces) {
  uint64_t total = 0;
  for (std::string_view p : pieces) total += p.size();
  return total;
}

class MmapMedium final : public JournalMedium {
 public:
  MmapMedium(char* base, uint64_t size, std::string name)
      : base_(base), size_(size), name_(std::move(name)) {}
  ~MmapMedium() override { ::munmap(base_, size_); }
  MmapMedium(const MmapMedium&) = delete;
  MmapMedium& operator=(const MmapMedium&) = delete;

  uint64_t size() const override { return size_; }
  const std::string& name() const override { return name_; }

  Status Write(uint64_t offset, std::span<const std::string_view> pieces) override {
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, TotalSize(pieces), size_, name_));
    char* out = base_ + offset;
    for (std::string_view p : pieces) {
      if (p.empty()) continue;
      std::memcpy(out, p.data(), p.size());
      out += p.size();
    }
    return {};
  }

  Result<std::string_view> Read(uint64_t offset, uint64_t n, std::string*) const override {
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, n, size_, name_));
    return std::string_view(base_ + offset, n);
  }

  Status Sync(uint64_t offset, uint64_t length) override {
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, length, size_, name_));
    if (length == 0) return {};
    // msync wants a page-aligned start; the mapping starts at file offset 0.
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    uint64_t start = offset / page * page;
    uint64_t end = std::min(size_, (offset + length + page - 1) / page * page);
    if (::msync(base_ + start, end - start, MS_SYNC) != 0) {
      return Status::IOError("msync " + name_ + " " + Range(start, end - start), errno);
    }
    return {};
  }

 private:
  char* const base_;
  const uint64_t size_;
  const std::string name_;
};

class PwriteMedium final : public JournalMedium {
 public:
  PwriteMedium(UniqueFd fd, uint64_t size, std::string name)
      : fd_(std::move(fd)), size_(size), name_(std::move(name)) {}

  uint64_t size() const override { return size_; }
  const std::string& name() const override { return name_; }

  Status Write(uint64_t offset, std::span<const std::string_view> pieces) override {
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, TotalSize(pieces), size_, name_));
    constexpr size_t kMaxIov = 8;
    while (!pieces.empty()) {
      iovec iov[kMaxIov];
      size_t count = 0;
      size_t want = 0;
      for (; count < std::min(kMaxIov, pieces.size()); ++count) {
        iov[count].iov_base = const_cast<char*>(pieces[count].data());
        iov[count].iov_len = pieces[count].size();
        want += pieces[count].size();
      }
      ssize_t done = ::pwritev(fd_.get(), iov, static_cast<int>(count), static_cast<off_t>(offset));
      if (done < 0 && errno == EINTR) continue;
      if (done < 0)
        return Status::IOError("pwritev " + name_ + " at " + std::to_string(offset), errno);
      if (static_cast<size_t>(done) == want) {
        offset += want;
        pieces = pieces.subspan(count);
        continue;
      }
      // A short write (rare: a signal, a full disk): finish byte by byte with pwrite.
      size_t skip = static_cast<size_t>(done);
      for (size_t i = 0; i < count; ++i) {
        std::string_view p = pieces[i];
        size_t drop = std::min(skip, p.size());
        skip -= drop;
        offset += drop;
        MIRROR_RETURN_IF_ERROR(WriteAll(offset, p.substr(drop)));
        offset += p.size() - drop;
      }
      pieces = pieces.subspan(count);
    }
    return {};
  }

  Result<std::string_view> Read(uint64_t offset, uint64_t n, std::string* scratch) const override {
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, n, size_, name_));
    scratch->resize(n);
    uint64_t got = 0;
    while (got < n) {
      ssize_t r =
          ::pread(fd_.get(), scratch->data() + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::IOError("pread " + name_ + " " + Range(offset, n), errno);
      if (r == 0) {
        return Status::IOError("pread " + name_ + " " + Range(offset, n) + ": file shrank", EIO);
      }
      got += static_cast<uint64_t>(r);
    }
    return std::string_view(*scratch);
  }

  Status Sync(uint64_t offset, uint64_t length) override {
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, length, size_, name_));
    if (::fdatasync(fd_.get()) != 0) return Status::IOError("fdatasync " + name_, errno);
    return {};
  }

  Status WriteDurably(uint64_t offset, std::span<const std::string_view> pieces) override {
    const uint64_t total = TotalSize(pieces);
    MIRROR_RETURN_IF_ERROR(CheckRange(offset, total, size_, name_));
    constexpr size_t kMaxIov = 8;
    if (pieces.size() <= kMaxIov) {
      iovec iov[kMaxIov];
      for (size_t i = 0; i < pieces.size(); ++i) {
        iov[i].iov_base = const_cast<char*>(pieces[i].data());
        iov[i].iov_len = pieces[i].size();
      }
      ssize_t done;
      do {
        done = ::pwritev2(fd_.get(), iov, static_cast<int>(pieces.size()),
                          static_cast<off_t>(offset), RWF_DSYNC);
      } while (done < 0 && errno == EINTR);
      if (done < 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
        return Status::IOError("pwritev2(RWF_DSYNC) " + name_ + " at " + std::to_string(offset),
                               errno);
      }
      if (done >= 0 && static_cast<uint64_t>(done) == total) return {};
    }
    // Short, unsupported or many pieces: the general way.
    return JournalMedium::WriteDurably(offset, pieces);
  }

 private:
  Status WriteAll(uint64_t offset, std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t w = ::pwrite(fd_.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::IOError("pwrite " + name_ + " at " + std::to_string(offset), errno);
      bytes.remove_prefix(static_cast<size_t>(w));
      offset += static_cast<uint64_t>(w);
    }
    return {};
  }

  const UniqueFd fd_;
  const uint64_t size_;
  const std::string name_;
};

Status CheckFileSize(int fd, uint64_t size, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IOError("fstat " + name, errno);
  if (static_cast<uint64_t>(st.st_size) < size) {
    return Status::InvalidArgument(name + " is " + std::to_string(st.st_size) +
                                   " bytes, shorter than the " + std::to_string(size) +
                                   " bytes asked for");
  }
  return {};
}

}  // namespace

Status JournalMedium::WriteDurably(uint64_t offset, std::span<const std::string_view> pieces) {
  MIRROR_RETURN_IF_ERROR(Write(offset, pieces));
  return Sync(offset, TotalSize(pieces));
}

std::string_view JournalMediumName(JournalMediumKind kind) {
  return kind == JournalMediumKind::kMmap ? "mmap" : "pwrite";
}

Result<std::unique_ptr<JournalMedium>> NewMmapMedium(UniqueFd fd, uint64_t size, std::string name) {
  MIRROR_RETURN_IF_ERROR(CheckFileSize(fd.get(), size, name));
  if (size == 0) return Status::InvalidArgument("cannot map an empty file " + name);
  // MAP_POPULATE builds the page tables now, so appends do not take a read fault per page.
  void* base =
      ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
  if (base == MAP_FAILED) return Status::IOError("mmap " + name, errno);
  // The mapping keeps the file open; the fd is closed when `fd` goes out of scope.
  return std::unique_ptr<JournalMedium>(
      std::make_unique<MmapMedium>(static_cast<char*>(base), size, std::move(name)));
}

Result<std::unique_ptr<JournalMedium>> NewPwriteMedium(UniqueFd fd, uint64_t size,
                                                       std::string name) {
  MIRROR_RETURN_IF_ERROR(CheckFileSize(fd.get(), size, name));
  return std::unique_ptr<JournalMedium>(
      std::make_unique<PwriteMedium>(std::move(fd), size, std::move(name)));
}

Result<std::unique_ptr<JournalMedium>> NewJournalMedium(JournalMediumKind kind, UniqueFd fd,
                                                        uint64_t size, std::string name) {
  if (kind == JournalMediumKind::kMmap) return NewMmapMedium(std::move(fd), size, std::move(name));
  return NewPwriteMedium(std::move(fd), size, std::move(name));
}

Result<std::unique_ptr<JournalMedium>> OpenJournalMedium(const std::string& path,
                                                         JournalMediumKind kind) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return Status::FromErrno("open " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IOError("fstat " + path, errno);
  return NewJournalMedium(kind, std::move(fd), static_cast<uint64_t>(st.st_size), path);
}

}  // namespace mirror::common
