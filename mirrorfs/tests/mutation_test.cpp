#include "mirrorfs/mutation.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <shared_mutex>
#include <thread>

#include "tests/unit/test_util.h"

using namespace mirror::fs;

namespace {

class RefusingSink final : public MutationSink {
 public:
  int Before(const Mutation&) override { return ENOSPC; }
  void After(const Mutation&, int) override { ++after; }
  int after = 0;
};

struct Root {
  explicit Root(const std::string& path) {
    mirror::common::UniqueFd fd(open(path.c_str(), O_PATH | O_CLOEXEC));
    struct stat st;
    REQUIRE(fstatat(fd.get(), "", &st, AT_EMPTY_PATH) == 0);
    table = std::make_unique<InodeTable>(std::move(fd), st);
  }
  std::unique_ptr<InodeTable> table;
};

}  // namespace

TEST_CASE("CountingSinkSeesCommitFailAndAbandon") {
  mirror::test::TempDir dir;
  Root root(dir.path());
  std::shared_mutex ns;
  CountingSink sink;
  {
    Mutation m(ns, sink, MutationKind::kWrite, &root.table->Root());
    REQUIRE(m.Start() == 0);
    m.Commit();
  }
  {
    Mutation m(ns, sink, MutationKind::kMkdir, nullptr);
    REQUIRE(m.Start() == 0);
    m.Fail(EEXIST);
  }
  { Mutation m(ns, sink, MutationKind::kMkdir, nullptr); }  // never started: not counted
  {
    Mutation m(ns, sink, MutationKind::kUnlink, nullptr);
    REQUIRE(m.Start() == 0);
  }  // started, abandoned: a failure
  CHECK(sink.committed(MutationKind::kWrite) == 1);
  CHECK(sink.failed(MutationKind::kMkdir) == 1);
  CHECK(sink.begun(MutationKind::kMkdir) == 1);
  CHECK(sink.failed(MutationKind::kUnlink) == 1);
}

TEST_CASE("RefusedMutationNeverReachesAfter") {
  mirror::test::TempDir dir;
  Root root(dir.path());
  std::shared_mutex ns;
  RefusingSink sink;
  {
    Mutation m(ns, sink, MutationKind::kChmod, &root.table->Root());
    CHECK(m.Start() == ENOSPC);
  }
  CHECK(sink.after == 0);
}

TEST_CASE("NamespaceMutationExcludesDataMutations") {
  mirror::test::TempDir dir;
  Root root(dir.path());
  std::shared_mutex ns;
  CountingSink sink;
  std::atomic<bool> data_done{false};
  std::thread writer;
  {
    Mutation rename(ns, sink, MutationKind::kRename, nullptr);
    writer = std::thread([&] {
      Mutation w(ns, sink, MutationKind::kWrite, &root.table->Root());
      data_done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(!data_done.load());  // blocked behind the exclusive namespace lock
  }
  writer.join();
  CHECK(data_done.load());
}

TEST_CASE("DataMutationsOnOneInodeAreSerialised") {
  mirror::test::TempDir dir;
  Root root(dir.path());
  std::shared_mutex ns;
  CountingSink sink;
  std::atomic<bool> second_in{false};
  std::thread other;
  {
    Mutation first(ns, sink, MutationKind::kWrite, &root.table->Root());
    other = std::thread([&] {
      Mutation second(ns, sink, MutationKind::kFallocate, &root.table->Root());
      second_in = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(!second_in.load());
  }
  other.join();
  CHECK(second_in.load());
}
