// open, read, write, flush, release, fsync.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

}  // namespace

void DropDirect(int fd, int flags) {
  if (flags & O_DIRECT) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT);
}

int OpenExisting(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem& fs = FsOf(req);
  Inode& inode = fs.inodes().Get(ino);
  int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
  int fd;
  if (flags & O_TRUNC) {
    // Truncation on open changes the file: journaled, and done as the caller so that BACKING
    // clears suid/sgid as it would natively.
    Mutation m = fs.BeginMutation(MutationKind::kTruncateOnOpen, &inode);
    m.info().ino = ino;
    m.info().flags = static_cast<uint32_t>(flags);
    if (int err = m.Start()) return err;
    {
      CallerCreds creds(req, false);
      if (creds.error() != 0) return m.Finish(creds.error());
      fd = ReopenInode(inode, flags);
    }
    m.Finish(fd < 0 ? -fd : 0);
  } else {
    fd = ReopenInode(inode, flags);
  }
  if (fd < 0) return -fd;
  DropDirect(fd, flags);
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

namespace {

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int err = OpenExisting(req, ino, fi);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else if (fuse_reply_open(req, fi) != 0) {
    close(static_cast<int>(fi->fh));  // the request was interrupted: no release will come
  }
}

void Read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  // Zero copy where libfuse can splice; it replies with the error itself if the read fails.
  // Not FUSE_BUFVEC_INIT: a C compound literal.
  fuse_bufvec buf{};
  buf.count = 1;
  buf.buf[0].size = size;
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = static_cast<int>(fi->fh);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

// Returns bytes written or -errno.
ssize_t DoWrite(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off,
                fuse_file_info* fi) {
  Filesystem& fs = FsOf(req);
  Inode& inode = fs.inodes().Get(ino);
  int fd = static_cast<int>(fi->fh);
  Mutation m = fs.BeginMutation(MutationKind::kWrite, &inode);
  MutationInfo& info = m.info();
  info.ino = ino;
  info.fd = fd;
  info.data = data;
  info.length = size;
  info.offset = off;
  if (fi->flags & O_APPEND) {
    // pwrite on an O_APPEND fd appends at the end; under the data mutex the end is known.
    struct stat st;
    if (fstat(fd, &st) == 0) info.offset = st.st_size;
  }
  if (int err = m.Start()) return -err;
  ssize_t n;
  {
    CallerFsIds ids(req);  // BACKING drops suid/sgid/capabilities as for this writer
    n = pwrite(fd, data, size, off);
  }
  if (n < 0) return -m.Finish(errno);
  info.result_length = static_cast<uint64_t>(n);
  m.Commit();
  return n;
}

void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
           fuse_file_info* fi) {
  ssize_t n = DoWrite(req, ino, buf, size, off, fi);
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
  } else {
    fuse_reply_write(req, static_cast<size_t>(n));
  }
}

void Flush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  // close() of a duplicate reports delayed write errors (NFS-style BACKING) like close would.
  int dup_fd = dup(static_cast<int>(fi->fh));
  int err = dup_fd < 0 ? errno : (close(dup_fd) == 0 ? 0 : errno);
  fuse_reply_err(req, err);
}

void Release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

void Fsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  int fd = static_cast<int>(fi->fh);
  int rc = datasync ? fdatasync(fd) : fsync(fd);
  fuse_reply_err(req, rc == 0 ? 0 : errno);
}

}  // namespace

void AddOpenRwOps(fuse_lowlevel_ops& ops) {
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  ops.flush = Flush;
  ops.release = Release;
  ops.fsync = Fsync;
}

}  // namespace mirror::fs
