// fallocate (all modes BACKING supports), copy_file_range, lseek (SEEK_DATA/SEEK_HOLE).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "mirrorfs/creds.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

int DoFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                fuse_file_info* fi) {
  Filesystem& fs = FsOf(req);
  Mutation m = fs.BeginMutation(MutationKind::kFallocate, &fs.inodes().Get(ino));
  m.info().ino = ino;
  m.info().fd = static_cast<int>(fi->fh);
  m.info().flags = static_cast<uint32_t>(mode);
  m.info().offset = offset;
  m.info().length = static_cast<uint64_t>(length);
  if (int err = m.Start()) return err;
  int rc;
  {
    CallerFsIds ids(req);
    rc = fallocate(static_cast<int>(fi->fh), mode, offset, length);
  }
  return m.Finish(rc == 0 ? 0 : errno);
}

void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi) {
  fuse_reply_err(req, DoFallocate(req, ino, mode, offset, length, fi));
}

// At most this much per request; copy_file_range may copy less than asked, and callers
// loop. It is also the largest write a journal record carries (FuseParams::max_write).
constexpr size_t kCopyChunk = 1u << 20;

// Returns bytes copied or -errno. The copy is a read of the source and a write of exactly
// those bytes, journaled as a write: what the record carries is what BACKING got, even if
// another client writes the source meanwhile (only the destination is locked). The kernel
// has already checked the flags, the fds' modes and same-file overlaps.
ssize_t DoCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                        fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                        int flags) {
  Filesystem& fs = FsOf(req);
  thread_local std::vector<char> buf;
  size_t want = std::min(len, kCopyChunk);
  buf.resize(want);
  Mutation m = fs.BeginMutation(MutationKind::kCopyFileRange, &fs.inodes().Get(ino_out));
  ssize_t got = pread(static_cast<int>(fi_in->fh), buf.data(), want, off_in);
  if (got <= 0) return got < 0 ? -errno : 0;
  MutationInfo& info = m.info();
  info.ino = ino_out;
  info.fd = static_cast<int>(fi_out->fh);
  info.offset = off_out;
  info.src_ino = ino_in;
  info.src_offset = off_in;
  info.data = buf.data();
  info.length = static_cast<uint64_t>(got);
  info.flags = static_cast<uint32_t>(flags);
  if (int err = m.Start()) return -err;
  ssize_t n;
  {
    CallerFsIds ids(req);
    n = pwrite(static_cast<int>(fi_out->fh), buf.data(), static_cast<size_t>(got), off_out);
  }
  if (n < 0) return -m.Finish(errno);
  info.result_length = static_cast<uint64_t>(n);
  m.Commit();
  return n;
}

void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags) {
  ssize_t n = DoCopyFileRange(req, ino_in, off_in, fi_in, ino_out, off_out, fi_out, len, flags);
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
  } else {
    fuse_reply_write(req, static_cast<size_t>(n));
  }
}

void Lseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t off, int whence, fuse_file_info* fi) {
  off_t res = lseek(static_cast<int>(fi->fh), off, whence);
  if (res < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_lseek(req, res);
  }
}

}  // namespace

void AddRangeOps(fuse_lowlevel_ops& ops) {
  ops.fallocate = Fallocate;
  ops.copy_file_range = CopyFileRange;
  ops.lseek = Lseek;
}

}  // namespace mirror::fs
