// Resyncer and PlanResync without a network: a fake link applies the journal's records
// to an image directory with common's apply, answers manifests and block sums from it.
// After Run() the image's manifest equals BACKING's (content hashes included), whatever
// the two trees held before, and only the blocks that differ were sent.
#include "mirrorfs/resync.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <shared_mutex>
#include <string>

#include "common/apply.h"
#include "common/journal.h"
#include "common/manifest.h"
#include "tests/unit/test_util.h"

namespace {

namespace common = mirror::common;
using mirror::fs::Resyncer;
using mirror::fs::ResyncLink;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

// mirrord in a box: the image is a directory; records reach it when the link drains.
class FakeLink : public ResyncLink {
 public:
  FakeLink(common::Journal& journal, const std::string& image) : journal_(journal), image_(image) {
    auto tree = common::ImageTree::Open(image);
    REQUIRE(tree.ok());
    tree_.emplace(std::move(tree).value());
  }
  common::Status RestartStream(uint64_t next_seq) override {
    next_ = next_seq;
    return common::Status::Ok();
  }
  common::Result<common::Manifest> FetchManifest(bool content_hashes) override {
    Drain();
    common::ManifestOptions o;
    o.content_hashes = content_hashes;
    return common::BuildManifest(image_, o);
  }
  common::Result<Sums> FetchSums(const std::string& path, uint32_t block_size) override {
    Drain();
    Sums out;
    common::UniqueFd fd(open((image_ + "/" + path).c_str(), O_RDONLY | O_NOFOLLOW));
    if (!fd) return out;
    struct stat st;
    REQUIRE(fstat(fd.get(), &st) == 0);
    out.found = true;
    out.size = static_cast<uint64_t>(st.st_size);
    MIRROR_ASSIGN_OR_RETURN(out.sums, common::FileBlockSums(fd.get(), block_size));
    return out;
  }
  common::Status FinishResync(uint64_t /*through_seq*/) override {
    Drain();
    return common::Status::Ok();
  }
  void Notify() override {}

  // Applies every released record from next_ on, as mirrord would.
  void Drain() {
    if (next_ == 0) return;
    auto cursor = journal_.ReadFrom(next_);
    REQUIRE(cursor.ok());
    while (true) {
      auto more = cursor->Next();
      REQUIRE(more.ok());
      if (!*more) break;
      common::ApplyOptions o;
      o.allow_devices = true;
      common::Status s = tree_->Apply(cursor->record(), o);
      REQUIRE_MESSAGE(s.ok(), s.ToString());
      if (const auto* w = std::get_if<common::WriteOp>(&cursor->record().op)) {
        written_ += w->data.size();
      }
      next_ = cursor->seq() + 1;
    }
  }
  uint64_t written() const { return written_; }

 private:
  common::Journal& journal_;
  std::string image_;
  std::optional<common::ImageTree> tree_;
  uint64_t next_ = 0;
  uint64_t written_ = 0;
};

struct Rig {
  Rig() {
    REQUIRE(mkdir(backing().c_str(), 0755) == 0);
    REQUIRE(mkdir(image().c_str(), 0700) == 0);
    common::JournalOptions o;
    o.size_bytes = 64u << 20;
    auto j = common::Journal::Create(dir.path() + "/journal", {"src", "vol", 1}, o);
    REQUIRE(j.ok());
    journal = std::move(*j);
    link = std::make_unique<FakeLink>(*journal, image());
  }
  std::string backing() const { return dir.path() + "/backing"; }
  std::string image() const { return dir.path() + "/image"; }
  std::string b(const std::string& p) const { return backing() + "/" + p; }
  std::string i(const std::string& p) const { return image() + "/" + p; }

  void Resync() {
    Resyncer r(
        *journal, backing(), [this] { return std::unique_lock(freeze); }, *link);
    common::Status s = r.Run();
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    progress = r.progress();
  }
  void ExpectEqual() {
    common::ManifestOptions o;
    o.content_hashes = true;
    auto want = common::BuildManifest(backing(), o);
    auto got = common::BuildManifest(image(), o);
    REQUIRE(want.ok());
    REQUIRE(got.ok());
    std::string text;
    for (const auto& d : common::CompareManifests(*want, *got)) text += d.Describe() + "\n";
    CHECK_MESSAGE(text.empty(), text);
    // Holes stay holes: the 10 MiB sparse file keeps its data in the image, rounded up
    // to whole 64 KiB blocks, and no more.
    struct stat si;
    if (stat(i("sparse").c_str(), &si) == 0) CHECK(si.st_blocks * 512 <= 256 * 1024);
  }

  TempDir dir;
  std::unique_ptr<common::Journal> journal;
  std::unique_ptr<FakeLink> link;
  std::shared_mutex freeze;
  mirror::fs::ResyncProgress progress;
};

void MakeSparse(const std::string& path, off_t size, off_t data_at, const std::string& data) {
  common::UniqueFd fd(open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0640));
  REQUIRE(fd);
  REQUIRE(ftruncate(fd.get(), size) == 0);
  REQUIRE(pwrite(fd.get(), data.data(), data.size(), data_at) == static_cast<ssize_t>(data.size()));
}

// Everything a volume holds: dirs, files, a hard link pair, a symlink, a fifo, a device,
// xattrs, owners, a setgid dir, a sparse file.
void Populate(Rig& r) {
  REQUIRE(mkdir(r.b("d").c_str(), 0750) == 0);
  REQUIRE(mkdir(r.b("d/e").c_str(), 02775) == 0);
  WriteFileBytes(r.b("d/f"), std::string(200000, 'f'));
  WriteFileBytes(r.b("top"), "top\n");
  REQUIRE(link(r.b("d/f").c_str(), r.b("d/e/hard").c_str()) == 0);
  REQUIRE(symlink("../top", r.b("d/sym").c_str()) == 0);
  REQUIRE(mkfifo(r.b("d/fifo").c_str(), 0600) == 0);
  REQUIRE(mknod(r.b("d/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  REQUIRE(setxattr(r.b("top").c_str(), "user.color", "blue", 4, 0) == 0);
  REQUIRE(chown(r.b("d/e").c_str(), 1000, 1000) == 0);
  REQUIRE(lchown(r.b("d/sym").c_str(), 65534, 65534) == 0);
  MakeSparse(r.b("sparse"), 10 << 20, 5 << 20, std::string(70000, 's'));
}

TEST_CASE("BaselineOfATreeIntoAnEmptyImage") {
  Rig r;
  Populate(r);
  r.Resync();
  r.ExpectEqual();
  CHECK(r.progress.baseline);
  CHECK(r.progress.phase == "done");
  CHECK(r.progress.files_total == 3);  // d/f (once, with its hard link), top, sparse
  // The sparse file's hole was not sent: about 200000 + 4 + 70000 bytes of data (the
  // blocks holding them), not its 10 MiB.
  CHECK(r.link->written() < 600000);
}

TEST_CASE("ResyncSendsOnlyWhatDiffers") {
  Rig r;
  Populate(r);
  WriteFileBytes(r.b("big"), std::string(4 << 20, 'b'));
  r.Resync();
  const uint64_t first = r.link->written();
  // Now the trees drift apart: in BACKING a block of big changes, a file goes, one comes,
  // modes, owners and xattrs change; in the image, things BACKING never had appear.
  {
    common::UniqueFd fd(open(r.b("big").c_str(), O_WRONLY));
    REQUIRE(pwrite(fd.get(), "XYZ", 3, 3 << 20) == 3);
  }
  REQUIRE(unlink(r.b("d/fifo").c_str()) == 0);
  WriteFileBytes(r.b("d/new"), "new file\n");
  REQUIRE(chmod(r.b("top").c_str(), 0600) == 0);
  REQUIRE(chown(r.b("d/f").c_str(), 1234, 1234) == 0);
  REQUIRE(setxattr(r.b("top").c_str(), "user.color", "red", 3, 0) == 0);
  REQUIRE(removexattr(r.b("top").c_str(), "user.color") == 0);
  REQUIRE(setxattr(r.b("d").c_str(), "user.tag", "x", 1, 0) == 0);
  REQUIRE(mkdir(r.i("stray").c_str(), 0755) == 0);
  WriteFileBytes(r.i("stray/junk"), "junk");
  REQUIRE(unlink(r.i("d/sym").c_str()) == 0);
  REQUIRE(mkdir(r.i("d/sym").c_str(), 0755) == 0);           // another type at the same path
  WriteFileBytes(r.i("sparse"), std::string(1 << 20, 'z'));  // holes filled in the image
  r.Resync();
  r.ExpectEqual();
  CHECK_FALSE(r.progress.baseline);
  // One 64 KiB block of big, the new file, sparse's data block(s): far less than big.
  const uint64_t second = r.link->written() - first;
  CHECK(second < 400000);
  CHECK(second > 0);
}

TEST_CASE("ClientChangesDuringTheDataPhaseLandInOrder") {
  // The freeze lock is what a client change takes: a change made between two ranges of
  // the data phase (here: by the progress callback) reaches the image in BACKING's order.
  Rig r;
  WriteFileBytes(r.b("f"), std::string(3 << 20, 'a'));
  Resyncer res(
      *r.journal, r.backing(), [&r] { return std::unique_lock(r.freeze); }, *r.link);
  int steps = 0;
  res.OnProgress([&](const mirror::fs::ResyncProgress& p) {
    if (p.phase != "data" || ++steps != 2) return;
    // A client write and its record, as mirrorfs would journal them.
    common::UniqueFd fd(open(r.b("f").c_str(), O_WRONLY));
    REQUIRE(pwrite(fd.get(), "CLIENT", 6, 100) == 6);
    REQUIRE(pwrite(fd.get(), "LATE", 4, (3 << 20) - 10) == 4);
    struct stat st;
    REQUIRE(fstat(fd.get(), &st) == 0);
    const common::Timespec t{st.st_mtim.tv_sec, static_cast<uint32_t>(st.st_mtim.tv_nsec)};
    REQUIRE(r.journal->Append(common::WriteOp{"f", 100, t, "CLIENT"}).ok());
    REQUIRE(r.journal->Append(common::WriteOp{"f", (3 << 20) - 10, t, "LATE"}).ok());
  });
  REQUIRE(res.Run().ok());
  r.link->Drain();
  r.ExpectEqual();
}

}  // namespace
