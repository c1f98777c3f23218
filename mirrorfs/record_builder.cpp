#include "mirrorfs/record_builder.h"

#include "mirrorfs/name_scan.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>

#include <cerrno>

namespace mirror::fs {
namespace {

using common::Timespec;

int StatInode(Inode& inode, struct stat* st) {
  return fstatat(inode.fd.get(), "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

// The path of `n` into *out; an Outcome other than kRecord when it has none.
BuiltRecord::Outcome NodePath(InodeTable& inodes, InodeNumber n, std::string* out) {
  auto path = inodes.PathOf(n);
  if (path.ok()) {
    *out = std::move(*path);
    return BuiltRecord::Outcome::kRecord;
  }
  struct stat st;
  if (StatInode(inodes.Get(n), &st) != 0) return BuiltRecord::Outcome::kUnknownName;
  if (st.st_nlink == 0) return BuiltRecord::Outcome::kNoName;
  // Linked, but under names the table never saw: find one (rare and bounded).
  auto scanned = ScanForPath(inodes.Root().fd.get(), st);
  if (!scanned.ok()) return BuiltRecord::Outcome::kUnknownName;
  inodes.RememberScannedPath(n, *scanned);
  *out = std::move(*scanned);
  return BuiltRecord::Outcome::kRecord;
}

BuiltRecord::Outcome EntryPath(InodeTable& inodes, InodeNumber parent, const std::string& name,
                               std::string* out) {
  BuiltRecord::Outcome o = NodePath(inodes, parent, out);
  if (o != BuiltRecord::Outcome::kRecord) {
    // A directory that lost its last name cannot gain entries: anything else is unknown.
    return BuiltRecord::Outcome::kUnknownName;
  }
  *out = JoinEntryPath(*out, name);
  return o;
}

bool MayDropSetidBits(MutationKind kind) {
  switch (kind) {
    case MutationKind::kWrite:
    case MutationKind::kCopyFileRange:
    case MutationKind::kTruncate:
    case MutationKind::kTruncateOnOpen:
    case MutationKind::kFallocate:
    case MutationKind::kSetxattr:
    case MutationKind::kRemovexattr:
      return true;
    default:
      return false;
  }
}

Timespec ResolveTime(int to_set, int now_bit, int set_bit, const struct timespec& given,
                     const struct timespec& now) {
  if (to_set & now_bit) return ToRecordTime(now);
  if (to_set & set_bit) return ToRecordTime(given);
  return Timespec{0, common::kTimeOmit};
}

// Node-creating ops: the predicted owner and mode need the parent's attributes.
int BuildNewNode(const Mutation& m, InodeTable& inodes, const Timespec& t, BuiltRecord* out) {
  const MutationInfo& info = m.info();
  struct stat parent;
  if (int err = StatInode(inodes.Get(info.parent), &parent)) return err;
  out->predicts_node = true;
  out->uid = info.uid;
  out->gid = PredictNewGid(info.gid, parent);
  switch (info.kind) {
    case MutationKind::kCreate:
      out->mode = PredictNewMode(S_IFREG, info.mode, info.umask, parent);
      out->op = common::CreateOp{out->path, out->mode, out->uid, out->gid, t, t};
      break;
    case MutationKind::kMkdir:
      out->mode = PredictNewMode(S_IFDIR, info.mode, info.umask, parent);
      out->op = common::MkdirOp{out->path, out->mode, out->uid, out->gid, t, t};
      break;
    case MutationKind::kSymlink:
      out->mode = S_IFLNK | 0777;
      out->op = common::SymlinkOp{out->path, out->uid, out->gid, t, t, info.data};
      break;
    default:  // kMknod: the type is in info.mode
      if ((info.mode & S_IFMT) == S_IFREG || (info.mode & S_IFMT) == 0) {
        // mknod(2) of a regular file is a create.
        out->mode = PredictNewMode(S_IFREG, info.mode, info.umask, parent);
        out->op = common::CreateOp{out->path, out->mode, out->uid, out->gid, t, t};
        break;
      }
      out->mode = PredictNewMode(info.mode & S_IFMT, info.mode, info.umask, parent);
      out->op = common::MknodOp{out->path, out->mode, static_cast<uint64_t>(info.rdev),
                                out->uid, out->gid, t, t};
      break;
  }
  return 0;
}

}  // namespace

Timespec ToRecordTime(const struct timespec& t) {
  return Timespec{static_cast<int64_t>(t.tv_sec), static_cast<uint32_t>(t.tv_nsec)};
}

std::string JoinEntryPath(const std::string& parent_path, const std::string& name) {
  return parent_path == "." ? name : parent_path + "/" + name;
}

mode_t PredictNewMode(mode_t type, mode_t requested, mode_t umask, const struct stat& parent) {
  mode_t mode = requested & 07777 & ~umask;
  if (type == S_IFDIR && (parent.st_mode & S_ISGID)) mode |= S_ISGID;
  return type | mode;
}

gid_t PredictNewGid(gid_t caller_gid, const struct stat& parent) {
  return (parent.st_mode & S_ISGID) ? parent.st_gid : caller_gid;
}

mode_t PredictModeAfterChown(const struct stat& before) {
  mode_t mode = before.st_mode & 07777;
  if (S_ISDIR(before.st_mode)) return mode;
  mode &= ~S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) mode &= ~S_ISGID;
  return mode;
}

namespace {

int BuildRecordOp(const Mutation& m, InodeTable& inodes, const struct timespec& now,
                  BuiltRecord* out);

}  // namespace

int BuildRecord(const Mutation& m, InodeTable& inodes, const struct timespec& now,
                BuiltRecord* out) {
  if (int err = BuildRecordOp(m, inodes, now, out)) return err;
  // The kernel checks each name (NAME_MAX), but a whole path may outgrow a record.
  if (out->path.size() > common::kMaxPathBytes || out->new_path.size() > common::kMaxPathBytes) {
    return ENAMETOOLONG;
  }
  return 0;
}

namespace {

int BuildRecordOp(const Mutation& m, InodeTable& inodes, const struct timespec& now,
                  BuiltRecord* out) {
  const MutationInfo& info = m.info();
  const Timespec t = ToRecordTime(now);
  using O = BuiltRecord::Outcome;
  switch (info.kind) {
    case MutationKind::kCreate:
    case MutationKind::kMknod:
    case MutationKind::kMkdir:
    case MutationKind::kSymlink:
      out->outcome = EntryPath(inodes, info.parent, info.name, &out->path);
      if (out->outcome != O::kRecord) return 0;
      return BuildNewNode(m, inodes, t, out);
    case MutationKind::kLink:
      out->outcome = NodePath(inodes, info.ino, &out->path);
      if (out->outcome == O::kRecord) {
        out->outcome = EntryPath(inodes, info.new_parent, info.new_name, &out->new_path);
      }
      if (out->outcome == O::kRecord) out->op = common::LinkOp{out->path, out->new_path, t};
      return 0;
    case MutationKind::kUnlink:
    case MutationKind::kRmdir:
      out->outcome = EntryPath(inodes, info.parent, info.name, &out->path);
      if (out->outcome != O::kRecord) return 0;
      if (info.kind == MutationKind::kUnlink) {
        out->op = common::UnlinkOp{out->path, t};
      } else {
        out->op = common::RmdirOp{out->path, t};
      }
      return 0;
    case MutationKind::kRename:
      out->outcome = EntryPath(inodes, info.parent, info.name, &out->path);
      if (out->outcome == O::kRecord) {
        out->outcome = EntryPath(inodes, info.new_parent, info.new_name, &out->new_path);
      }
      if (out->outcome == O::kRecord) {
        out->op = common::RenameOp{out->path, out->new_path, info.flags, t, t};
      }
      return 0;
    default:
      break;
  }
  // Data and attribute changes name their inode.
  out->outcome = NodePath(inodes, info.ino, &out->path);
  if (out->outcome != O::kRecord) return 0;
  Inode& inode = inodes.Get(info.ino);
  if (info.kind == MutationKind::kChmod) {
    inode.no_setid_bits.store(false, std::memory_order_relaxed);
  } else if (MayDropSetidBits(info.kind) && !inode.no_setid_bits.load(std::memory_order_relaxed)) {
    // The kernel drops setuid/setgid on a write, truncate or ACL change by a caller
    // without CAP_FSETID, with no setattr of its own: predict "unchanged" and let the
    // sink journal what BACKING did.
    struct stat st;
    if (int err = StatInode(inode, &st)) return err;
    if (st.st_mode & (S_ISUID | S_ISGID)) {
      out->predicts_node = true;
      out->mode = st.st_mode;
      out->uid = st.st_uid;
      out->gid = st.st_gid;
    } else {
      inode.no_setid_bits.store(true, std::memory_order_relaxed);
    }
  }
  std::string_view data(info.data == nullptr ? "" : info.data, info.length);
  switch (info.kind) {
    case MutationKind::kWrite:
    case MutationKind::kCopyFileRange:
      out->op = common::WriteOp{out->path, static_cast<uint64_t>(info.offset), t, data};
      return 0;
    case MutationKind::kTruncate:
      out->op = common::TruncateOp{out->path, info.length, t};
      return 0;
    case MutationKind::kTruncateOnOpen:
      out->op = common::TruncateOp{out->path, 0, t};
      return 0;
    case MutationKind::kFallocate:
      out->op = common::FallocateOp{out->path, info.flags, static_cast<uint64_t>(info.offset),
                                    info.length, t};
      return 0;
    case MutationKind::kChmod:
      out->op = common::ChmodOp{out->path, static_cast<uint32_t>(info.mode & 07777)};
      return 0;
    case MutationKind::kChown: {
      struct stat before;
      if (int err = StatInode(inodes.Get(info.ino), &before)) return err;
      uint32_t uid = info.attr->st_uid == static_cast<uid_t>(-1) ? common::kIdUnchanged
                                                                 : info.attr->st_uid;
      uint32_t gid = info.attr->st_gid == static_cast<gid_t>(-1) ? common::kIdUnchanged
                                                                 : info.attr->st_gid;
      mode_t mode = PredictModeAfterChown(before);
      out->op = common::ChownOp{out->path, uid, gid, static_cast<uint32_t>(mode)};
      out->predicts_node = true;
      out->mode = (before.st_mode & S_IFMT) | mode;
      out->uid = uid == common::kIdUnchanged ? before.st_uid : uid;
      out->gid = gid == common::kIdUnchanged ? before.st_gid : gid;
      return 0;
    }
    case MutationKind::kUtimens: {
      int to_set = static_cast<int>(info.flags);
      out->op = common::UtimensOp{
          out->path,
          ResolveTime(to_set, FUSE_SET_ATTR_ATIME_NOW, FUSE_SET_ATTR_ATIME, info.attr->st_atim, now),
          ResolveTime(to_set, FUSE_SET_ATTR_MTIME_NOW, FUSE_SET_ATTR_MTIME, info.attr->st_mtim, now)};
      return 0;
    }
    case MutationKind::kSetxattr:
      out->op = common::SetxattrOp{out->path, info.name, data};
      return 0;
    case MutationKind::kRemovexattr:
      out->op = common::RemovexattrOp{out->path, info.name};
      return 0;
    default:
      return EIO;
  }
}

}  // namespace

}  // namespace mirror::fs
