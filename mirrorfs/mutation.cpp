#include "mirrorfs/mutation.h"

#include <cerrno>

namespace mirror::fs {

bool IsNamespaceKind(MutationKind kind) { return kind <= MutationKind::kRename; }

const char* MutationKindName(MutationKind kind) {
  static constexpr const char* kNames[kMutationKinds] = {
      "create",   "mknod",           "mkdir",    "symlink",    "link",
      "unlink",   "rmdir",           "rename",   "write",      "chmod",
      "chown",    "truncate",        "utimens",  "truncate_open", "fallocate",
      "copy_file_range", "setxattr", "removexattr"};
  return kNames[static_cast<int>(kind)];
}

int CountingSink::Before(const Mutation& m) {
  begun_[static_cast<int>(m.kind())].fetch_add(1, std::memory_order_relaxed);
  return 0;
}

void CountingSink::After(const Mutation& m, int err) {
  auto& counter = err == 0 ? committed_ : failed_;
  counter[static_cast<int>(m.kind())].fetch_add(1, std::memory_order_relaxed);
}

Mutation::Mutation(std::shared_mutex& namespace_mu, MutationSink& sink, MutationKind kind,
                   Inode* target)
    : guard_(std::in_place, namespace_mu, IsNamespaceKind(kind) ? nullptr : target), sink_(sink) {
  info_.kind = kind;
}

int Mutation::Start() {
  int err = sink_.Before(*this);
  started_ = err == 0;
  return err;
}

Mutation::~Mutation() {
  if (started_ && !finished_) Finish(EIO);
  guard_.reset();
  if (started_) sink_.Settle(*this);
}

int Mutation::Finish(int err) {
  if (started_ && !finished_) {
    finished_ = true;
    sink_.After(*this, err);
  }
  return err;
}

}  // namespace mirror::fs
