#include "mirrorfs/fs.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mirror::fs {

bool IsReservedXattr(const char* name) {
  return std::strncmp(name, kReservedXattrPrefix, sizeof(kReservedXattrPrefix) - 1) == 0;
}

ProcPath::ProcPath(int fd) { std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd); }

common::Result<std::unique_ptr<Filesystem>> Filesystem::Open(const std::string& backing,
                                                             FsParams params,
                                                             std::unique_ptr<MutationSink> sink) {
  common::UniqueFd root(::open(backing.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    int err = errno;
    if (err == ENOTDIR) return common::Status::InvalidArgument("backing " + backing + " is not a directory");
    return common::Status::FromErrno("backing " + backing, err);
  }
  struct stat st;
  if (fstatat(root.get(), "", &st, AT_EMPTY_PATH) != 0) {
    return common::Status::FromErrno("stat backing " + backing, errno);
  }
  if (!sink) sink = std::make_unique<CountingSink>();
  return std::unique_ptr<Filesystem>(new Filesystem(params, std::move(sink), std::move(root), st));
}

Filesystem::Filesystem(FsParams params, std::unique_ptr<MutationSink> sink, common::UniqueFd root,
                       const struct stat& root_st)
    : params_(params), sink_(std::move(sink)), root_st_(root_st),
      inodes_(std::make_unique<InodeTable>(std::move(root), root_st)) {}

int Filesystem::Stat(Inode& inode, struct stat* st) {
  return fstatat(inode.fd.get(), "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

int Filesystem::Lookup(InodeNumber parent, const char* name, fuse_entry_param* e) {
  std::memset(e, 0, sizeof(*e));
  Inode& dir = inodes_->Get(parent);
  common::UniqueFd fd(openat(dir.fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno;
  if (fstatat(fd.get(), "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  // ".." of the root and mounts inside BACKING are not ours to serve.
  InodeNumber ino = inodes_->AddLookup(std::move(fd), e->attr, parent, name);
  e->ino = ino;
  e->generation = inodes_->Get(ino).generation;
  e->attr_timeout = params_.attr_timeout;
  e->entry_timeout = params_.entry_timeout;
  return 0;
}

}  // namespace mirror::fs
