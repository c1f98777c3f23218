// opendir, readdir, readdirplus, releasedir, fsyncdir.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

// One open directory stream. The kernel serialises readdir calls on one handle.
struct DirHandle {
  explicit DirHandle(DIR* d) : dp(d) {}
  ~DirHandle() { closedir(dp); }
  DirHandle(const DirHandle&) = delete;
  DirHandle& operator=(const DirHandle&) = delete;
  DIR* dp;
  off_t offset = 0;          // the offset the stream is at
  dirent* pending = nullptr;  // read but not yet returned (did not fit)
};

DirHandle* HandleOf(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode& inode = FsOf(req).inodes().Get(ino);
  int fd = openat(inode.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  DIR* dp = fdopendir(fd);
  if (dp == nullptr) {
    int err = errno;
    close(fd);
    fuse_reply_err(req, err);
    return;
  }
  auto handle = std::make_unique<DirHandle>(dp);
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  if (fuse_reply_open(req, fi) == 0) handle.release();
}

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// Fills `buf` with entries from offset `off`; returns bytes used or -errno.
ssize_t FillDir(fuse_req_t req, fuse_ino_t ino, DirHandle& d, size_t size, off_t off, bool plus,
                char* buf) {
  Filesystem& fs = FsOf(req);
  if (off != d.offset) {
    seekdir(d.dp, off);
    d.pending = nullptr;
    d.offset = off;
  }
  size_t used = 0;
  while (true) {
    if (d.pending == nullptr) {
      errno = 0;
      d.pending = readdir(d.dp);
      if (d.pending == nullptr) {
        if (errno != 0 && used == 0) return -errno;
        break;
      }
    }
    dirent* ent = d.pending;
    size_t n;
    if (plus) {
      fuse_entry_param e{};
      bool looked_up = false;
      if (IsDotOrDotDot(ent->d_name)) {
        e.attr.st_ino = ent->d_ino;
        e.attr.st_mode = static_cast<mode_t>(ent->d_type) << 12;
      } else {
        int err = fs.Lookup(ino, ent->d_name, &e);
        if (err == ENOENT) {  // gone since readdir: skip it
          d.pending = nullptr;
          d.offset = ent->d_off;
          continue;
        }
        if (err != 0) return used > 0 ? static_cast<ssize_t>(used) : -err;
        looked_up = true;
      }
      n = fuse_add_direntry_plus(req, buf + used, size - used, ent->d_name, &e, ent->d_off);
      if (n > size - used) {
        if (looked_up) fs.inodes().Forget(e.ino, 1);  // the kernel will not see this entry
        break;
      }
    } else {
      struct stat st{};
      st.st_ino = ent->d_ino;
      st.st_mode = static_cast<mode_t>(ent->d_type) << 12;
      n = fuse_add_direntry(req, buf + used, size - used, ent->d_name, &st, ent->d_off);
      if (n > size - used) break;
    }
    used += n;
    d.offset = ent->d_off;
    d.pending = nullptr;
  }
  return static_cast<ssize_t>(used);
}

void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                   bool plus) {
  std::vector<char> buf(size);
  ssize_t n = FillDir(req, ino, *HandleOf(fi), size, off, plus, buf.data());
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
  } else {
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
}

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDirCommon(req, ino, size, off, fi, false);
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDirCommon(req, ino, size, off, fi, true);
}

void ReleaseDir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  delete HandleOf(fi);  // owned since OpenDir released it to the kernel
  fuse_reply_err(req, 0);
}

void FsyncDir(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  int fd = dirfd(HandleOf(fi)->dp);
  int rc = datasync ? fdatasync(fd) : fsync(fd);
  fuse_reply_err(req, rc == 0 ? 0 : errno);
}

}  // namespace

void AddDirOps(fuse_lowlevel_ops& ops) {
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.readdirplus = ReadDirPlus;
  ops.releasedir = ReleaseDir;
  ops.fsyncdir = FsyncDir;
}

}  // namespace mirror::fs
