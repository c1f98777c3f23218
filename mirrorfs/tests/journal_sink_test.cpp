// JournalSink and BuildRecord over a real inode table and journal (no FUSE): what each
// mutation journals, and what happens when the change fails or the inode has no name.
#include "mirrorfs/journal_sink.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shared_mutex>
#include <variant>

#include "common/journal.h"
#include "mirrorfs/record_builder.h"
#include "tests/unit/test_util.h"

using namespace mirror::fs;
namespace common = mirror::common;

namespace {

struct Fixture {
  Fixture() {
    backing = dir.path() + "/backing";
    REQUIRE(mkdir(backing.c_str(), 0755) == 0);
    common::UniqueFd fd(open(backing.c_str(), O_PATH | O_CLOEXEC));
    struct stat st;
    REQUIRE(fstatat(fd.get(), "", &st, AT_EMPTY_PATH) == 0);
    table = std::make_unique<InodeTable>(std::move(fd), st);
    common::JournalOptions options;
    options.size_bytes = 4u << 20;
    auto j = common::Journal::Create(dir.path() + "/journal", {"src", "vol", 1}, options);
    REQUIRE(j.ok());
    journal = std::move(*j);
    sink = std::make_unique<JournalSink>(*journal);
    sink->Attach(*table);
  }
  // Looks `name` up in the root, as FUSE would before using it.
  InodeNumber Lookup(const std::string& name) {
    common::UniqueFd fd(openat(table->Root().fd.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    REQUIRE(fd);
    struct stat st;
    REQUIRE(fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0);
    return table->AddLookup(std::move(fd), st, kRootInode, name);
  }
  std::vector<common::Record> Records() {
    std::vector<common::Record> out;
    auto cursor = journal->ReadFrom(journal->stats().tail_seq);
    REQUIRE(cursor.ok());
    for (;;) {
      auto more = cursor->Next();
      REQUIRE(more.ok());
      if (!*more) break;
      out.push_back(cursor->record());
    }
    return out;
  }

  mirror::test::TempDir dir;
  std::string backing;
  std::unique_ptr<InodeTable> table;
  std::unique_ptr<common::Journal> journal;
  std::unique_ptr<JournalSink> sink;
  std::shared_mutex ns;
};

}  // namespace

TEST_CASE("WriteIsJournaledWithThePathAndTheTimeSetOnBacking") {
  Fixture f;
  mirror::test::WriteFileBytes(f.backing + "/file", "old");
  InodeNumber ino = f.Lookup("file");
  {
    Mutation m(f.ns, *f.sink, MutationKind::kWrite, &f.table->Get(ino));
    m.info().ino = ino;
    m.info().data = "new";
    m.info().length = 3;
    m.info().offset = 0;
    REQUIRE(m.Start() == 0);
    int fd = open((f.backing + "/file").c_str(), O_WRONLY);
    REQUIRE(pwrite(fd, "new", 3, 0) == 3);
    close(fd);
    m.info().result_length = 3;
    m.Commit();
  }
  auto records = f.Records();
  REQUIRE(records.size() == 1);
  const auto* w = std::get_if<common::WriteOp>(&records[0].op);
  REQUIRE(w != nullptr);
  CHECK(w->path == "file");
  CHECK(w->data == "new");
  struct stat st;
  REQUIRE(stat((f.backing + "/file").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == w->mtime.sec);
  CHECK(static_cast<uint32_t>(st.st_mtim.tv_nsec) == w->mtime.nsec);
}

TEST_CASE("AFailedChangeIsVoided") {
  Fixture f;
  {
    Mutation m(f.ns, *f.sink, MutationKind::kMkdir, nullptr);
    m.info().parent = kRootInode;
    m.info().name = "d";
    m.info().mode = 0755;
    REQUIRE(m.Start() == 0);
    m.Fail(EEXIST);
  }
  auto records = f.Records();
  REQUIRE(records.size() == 1);
  CHECK(std::holds_alternative<common::VoidOp>(records[0].op));
}

TEST_CASE("AWriteToAnUnlinkedFileIsNotJournaled") {
  Fixture f;
  mirror::test::WriteFileBytes(f.backing + "/gone", "x");
  InodeNumber ino = f.Lookup("gone");
  f.table->RemoveName(f.table->Get(ino).dev, f.table->Get(ino).ino, kRootInode, "gone");
  REQUIRE(unlink((f.backing + "/gone").c_str()) == 0);
  {
    Mutation m(f.ns, *f.sink, MutationKind::kWrite, &f.table->Get(ino));
    m.info().ino = ino;
    m.info().data = "y";
    m.info().length = 1;
    REQUIRE(m.Start() == 0);
    m.info().result_length = 1;
    m.Commit();
  }
  CHECK(f.Records().empty());
  CHECK(f.sink->unjournaled() == 0);
}

TEST_CASE("ANewNodeOwnedOtherwiseThanPredictedGetsACorrection") {
  Fixture f;
  {
    Mutation m(f.ns, *f.sink, MutationKind::kMkdir, nullptr);
    m.info().parent = kRootInode;
    m.info().name = "d";
    m.info().mode = 0777;
    m.info().umask = 022;
    m.info().uid = 0;
    m.info().gid = 0;
    REQUIRE(m.Start() == 0);
    REQUIRE(mkdir((f.backing + "/d").c_str(), 0755) == 0);
    REQUIRE(chown((f.backing + "/d").c_str(), 7, 8) == 0);  // as if BACKING decided so
    m.Commit();
  }
  auto records = f.Records();
  REQUIRE(records.size() == 2);
  const auto* mk = std::get_if<common::MkdirOp>(&records[0].op);
  REQUIRE(mk != nullptr);
  CHECK(mk->mode == (S_IFDIR | 0755));
  const auto* fix = std::get_if<common::ChownOp>(&records[1].op);
  REQUIRE(fix != nullptr);
  CHECK(fix->path == "d");
  CHECK(fix->uid == 7);
  CHECK(fix->gid == 8);
}

TEST_CASE("PredictionsFollowTheKernelsRules") {
  struct stat parent = {};
  parent.st_mode = S_IFDIR | 02775;
  parent.st_gid = 50;
  CHECK(PredictNewGid(100, parent) == 50);
  CHECK(PredictNewMode(S_IFDIR, 0777, 022, parent) == (S_IFDIR | 02755));
  CHECK(PredictNewMode(S_IFREG, 0666, 027, parent) == (S_IFREG | 0640));
  parent.st_mode = S_IFDIR | 0755;
  CHECK(PredictNewGid(100, parent) == 100);
  struct stat file = {};
  file.st_mode = S_IFREG | 06755;
  CHECK(PredictModeAfterChown(file) == 0755);
  file.st_mode = S_IFREG | 06745;  // setgid without group-exec stays (mandatory locking bit)
  CHECK(PredictModeAfterChown(file) == 02745);
  struct stat dir = {};
  dir.st_mode = S_IFDIR | 06755;
  CHECK(PredictModeAfterChown(dir) == 06755);
}

TEST_CASE("AWriteToAHardLinkTheTableNeverSawIsJournaledUnderThatName") {
  Fixture f;
  REQUIRE(mkdir((f.backing + "/d").c_str(), 0755) == 0);
  mirror::test::WriteFileBytes(f.backing + "/a", "0123456789");
  REQUIRE(link((f.backing + "/a").c_str(), (f.backing + "/d/b").c_str()) == 0);
  InodeNumber ino = f.Lookup("a");  // the table knows only "a"
  Inode& inode = f.table->Get(ino);
  f.table->RemoveName(inode.dev, inode.ino, kRootInode, "a");
  REQUIRE(unlink((f.backing + "/a").c_str()) == 0);
  for (int i = 0; i < 2; ++i) {  // the second write uses the remembered path
    Mutation m(f.ns, *f.sink, MutationKind::kWrite, &inode);
    m.info().ino = ino;
    m.info().data = "X";
    m.info().length = 1;
    m.info().offset = i;
    REQUIRE(m.Start() == 0);
    m.info().result_length = 1;
    m.Commit();
  }
  auto records = f.Records();
  REQUIRE(records.size() == 2);
  for (const auto& r : records) {
    const auto* w = std::get_if<common::WriteOp>(&r.op);
    REQUIRE(w != nullptr);
    CHECK(w->path == "d/b");
  }
  CHECK(f.sink->unjournaled() == 0);
  // Once a name is removed anywhere, the remembered path is no longer trusted.
  f.table->RemoveName(0, 0, kRootInode, "unrelated");
  CHECK_FALSE(f.table->PathOf(ino).ok());
}
