// init/destroy: negotiate what the kernel does for us.
#include "mirrorfs/log.h"
#include "mirrorfs/ops/ops.h"

namespace mirror::fs {
namespace {

void Init(void* userdata, fuse_conn_info* conn) {
  auto* fs = static_cast<Filesystem*>(userdata);
  // We apply the caller's umask ourselves (per-thread umask), so that BACKING can let a
  // parent's default ACL replace it, as it would natively.
  if (conn->capable & FUSE_CAP_DONT_MASK) conn->want |= FUSE_CAP_DONT_MASK;
  // The kernel then enforces ACLs (stored on BACKING, read through getxattr) like BACKING does.
  if (conn->capable & FUSE_CAP_POSIX_ACL) conn->want |= FUSE_CAP_POSIX_ACL;
  // No writeback cache (a semantics change), no splice into our buffers (writes must be
  // plain memory for the journal).
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ);
  // We clear suid/sgid and file capabilities ourselves: writes, truncates and chowns run
  // with the caller's fsuid, so BACKING does it natively (creds.h). Without this the kernel
  // asks getxattr("security.capability") before every write, halving write throughput.
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV) conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
  // O_TRUNC arrives on open (one request) and is journaled there.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // Locks stay in the kernel (see ops.h).
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->max_write = fs->params().max_write;
  conn->max_readahead = conn->max_readahead > (1u << 20) ? conn->max_readahead : (1u << 20);
  Log(LogLevel::kInfo, "mounted (max_write " + std::to_string(conn->max_write) + ")");
}

void Destroy(void* /*userdata*/) { Log(LogLevel::kInfo, "unmounted"); }

}  // namespace

void AddInitOps(fuse_lowlevel_ops& ops) {
  ops.init = Init;
  ops.destroy = Destroy;
}

}  // namespace mirror::fs
