// The FUSE low-level operations, one family per file. Each family's file has `do_<op>`
// functions that return 0 or an errno and thin wrappers that send exactly one fuse_reply_*.
//
// Locks: flock and POSIX locks are deliberately NOT implemented: without getlk/setlk/flock
// handlers the kernel keeps both kinds of lock locally on the FUSE mount, which is exact
// for a single-host mount (the only way in is through this mount). Forwarding them to one
// daemon process would merge every client's locks into one owner.
#pragma once

#include <fuse_lowlevel.h>

#include "mirrorfs/fs.h"

namespace mirror::fs {

// All operations, ready for fuse_session_new.
fuse_lowlevel_ops MakeOperations();

// Per-family registration (each in its own file under ops/).
void AddInitOps(fuse_lowlevel_ops& ops);        // init.cpp
void AddLookupOps(fuse_lowlevel_ops& ops);      // lookup_forget.cpp: lookup, forget, forget_multi
void AddAttrOps(fuse_lowlevel_ops& ops);        // attr.cpp: getattr, setattr, readlink
void AddCreateOps(fuse_lowlevel_ops& ops);      // create.cpp: create, mknod, mkdir, symlink
void AddLinkUnlinkOps(fuse_lowlevel_ops& ops);  // link_unlink.cpp: link, unlink, rmdir
void AddRenameOps(fuse_lowlevel_ops& ops);      // rename.cpp
void AddOpenRwOps(fuse_lowlevel_ops& ops);      // open_rw.cpp: open, read, write, flush, release, fsync
void AddRangeOps(fuse_lowlevel_ops& ops);       // range.cpp: fallocate, copy_file_range, lseek
void AddDirOps(fuse_lowlevel_ops& ops);         // dir.cpp
void AddXattrOps(fuse_lowlevel_ops& ops);       // xattr.cpp
void AddStatfsAccessOps(fuse_lowlevel_ops& ops);  // statfs_access.cpp

// Shared helpers for the wrappers.
inline void ReplyErrOrNone(fuse_req_t req, int err) { fuse_reply_err(req, err); }
// Opens the file behind an O_PATH fd with `flags` (through /proc/self/fd).
int ReopenInode(Inode& inode, int flags);
// FUSE hands writes to us in buffers without O_DIRECT alignment, so a backing fd must not
// keep O_DIRECT: BACKING checked the flag at open (EINVAL where unsupported), and the I/O
// goes through its page cache.
void DropDirect(int fd, int flags);
// open(2) of an existing inode for the request (open_rw.cpp): sets fi->fh, or returns an
// errno. O_TRUNC is journaled as a truncation.
int OpenExisting(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
// Replies with `e` or the error.
void ReplyEntry(fuse_req_t req, int err, const fuse_entry_param& e);

}  // namespace mirror::fs
