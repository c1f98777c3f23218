// mirrord adopt (mirrord/adopt.h, adopt_cli.h): failback onto the old BACKING, switch
// back of a promoted store, the report of unshipped records, refusals and exit codes.
#include "mirrord/adopt.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/journal.h"
#include "common/volume_attrs.h"
#include "mirrord/adopt_cli.h"
#include "mirrord/mount_table.h"
#include "mirrord/source_store.h"
#include "mirrord/state_file.h"
#include "mirrord/store_lock.h"
#include "tests/unit/test_util.h"

namespace {

using namespace mirror::d;
namespace c = mirror::common;
namespace fs = std::filesystem;
using mirror::test::ReadFileBytes;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;
using nlohmann::json;

constexpr int64_t kNow = 1795611662000000000;  // 2026-11-25T13:01:02Z
constexpr const char* kStamp = "20261125T130102Z";

// A state dir, an old BACKING with volume id "V", its journal and an empty mount table.
struct Rig {
  TempDir tmp;
  std::string sd = tmp / "sd";
  std::string dir = tmp / "backing";
  std::string journal = tmp / "journal";
  std::string mounts = tmp / "mounts";
  std::string store = sd + "/web1";

  Rig() {
    REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
    REQUIRE(::setxattr(dir.c_str(), c::kVolumeIdXattr, "V", 1, 0) == 0);
    WriteFileBytes(mounts, "");
  }
  AdoptRequest Request(bool with_dir = true) const {
    AdoptRequest r;
    r.source_id = "web1";
    r.state_dir = sd;
    if (with_dir) r.dir = dir;
    r.journal = journal;
    r.mounts_path = mounts;
    r.now_ns = kNow;
    return r;
  }
  std::string Saved() const { return store + "/saved/" + kStamp; }
  std::string Moved() const { return journal + ".adopted-" + kStamp; }
};

// Journals `ops` (seqs from `first_seq`) for (source, "V", epoch).
void MakeJournal(const std::string& path, const std::vector<c::Op>& ops, uint64_t epoch = 1,
                 const std::string& source = "web1", uint64_t first_seq = 1) {
  c::JournalOptions o;
  o.size_bytes = 1u << 20;
  o.first_seq = first_seq;
  auto j = c::Journal::Create(path, {source, "V", epoch}, o);
  REQUIRE_MESSAGE(j.ok(), j.status().ToString());
  for (const c::Op& op : ops) {
    auto seq = (*j)->Append(op);
    REQUIRE_MESSAGE(seq.ok(), seq.status().ToString());
  }
  REQUIRE((*j)->Sync().ok());
}

// Seqs 1..9 of an old source: 1-3 reached the promoted side (its promoted_seq is 3).
std::vector<c::Op> History() {
  const c::Timespec t{1700000000, 0};
  return {
      c::CreateOp{"a", S_IFREG | 0644, 0, 0, t, t},    // 1
      c::WriteOp{"a", 0, t, "old"},                    // 2
      c::MkdirOp{"d", S_IFDIR | 0755, 0, 0, t, t},     // 3
      c::CreateOp{"d/b", S_IFREG | 0600, 0, 0, t, t},  // 4
      c::WriteOp{"d/b", 0, t, "unshipped"},            // 5
      c::RenameOp{"d/b", "d/c", 0, t, t},              // 6
      c::UnlinkOp{"gone", t},                          // 7
      c::CheckpointOp{},                               // 8
      c::SymlinkOp{"ln", 0, 0, t, t, "a"},             // 9
  };
}

// BACKING as the old source left it after History().
void FillBacking(const Rig& rig) {
  WriteFileBytes(rig.dir + "/a", "A-now");
  REQUIRE(::mkdir((rig.dir + "/d").c_str(), 0755) == 0);
  WriteFileBytes(rig.dir + "/d/c", "C-now");
  REQUIRE(::chmod((rig.dir + "/d/c").c_str(), 0640) == 0);
  const struct timespec times[2] = {{1600000000, 0}, {1600000123, 456}};
  REQUIRE(::utimensat(AT_FDCWD, (rig.dir + "/d/c").c_str(), times, 0) == 0);
  REQUIRE(::symlink("a", (rig.dir + "/ln").c_str()) == 0);
}

void WriteFenced(const Rig& rig, uint64_t epoch, uint64_t promoted_seq) {
  WriteFileBytes(rig.journal + ".fenced",
                 json{{"epoch", epoch},
                      {"promoted_seq", promoted_seq},
                      {"message", "fenced: promoted at epoch 2 (image at seq 3)"},
                      {"time", "2026-11-25T10:00:00Z"}}
                     .dump());
}

json ReadJson(const std::string& path) { return json::parse(ReadFileBytes(path)); }

std::vector<uint64_t> Seqs(const json& report) {
  std::vector<uint64_t> out;
  for (const json& r : report["records"]) out.push_back(r["seq"].get<uint64_t>());
  return out;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

AdoptResult MustAdopt(const AdoptRequest& req) {
  AdoptResult r = Adopt(req);
  REQUIRE_MESSAGE(r.outcome == AdoptOutcome::kDone, r.error);
  return r;
}

}  // namespace

TEST_CASE("FailbackSavesWhatFollowsTheFencedSeqAndMakesTheBackingTheImage") {
  Rig rig;
  MakeJournal(rig.journal, History());
  FillBacking(rig);
  WriteFenced(rig, 2, 3);
  WriteFileBytes(rig.journal + ".boot", "boot\n");

  AdoptResult r = MustAdopt(rig.Request());
  CHECK(r.epoch == 2);  // the promoted side's epoch: its mirrorfs is not fenced here
  CHECK(r.exact);
  CHECK(r.records == 5);  // 4, 5, 6, 7, 9: the checkpoint is not listed

  auto state = ReadStateFile(rig.store + "/state");
  REQUIRE(state.ok());
  CHECK(state->source_id == "web1");
  CHECK(state->volume_id == "V");
  CHECK(state->epoch == 2);
  CHECK_FALSE(state->promoted);
  CHECK(state->applied_seq == 0);
  CHECK(state->replay_through == 0);
  // Its first session must resync (WELCOME resume_seq 0), and promote refuses it till then.
  CHECK(state->resync_active);
  CHECK(state->resync_until == 0);
  CHECK(state->adopted);
  CHECK(fs::read_symlink(rig.store + "/image") == fs::canonical(rig.dir));
  auto mark = mirror::common::ReadImageMark(rig.dir);
  REQUIRE(mark.ok());
  CHECK(mark->has_value());  // mirrorfs now refuses to mount the old BACKING
  {
    // What mirrord makes of it: the source is told to resync, and promote refuses.
    auto store = SourceStore::Open(rig.store, "web1", StoreOptions{});
    REQUIRE_MESSAGE(store.ok(), store.status().ToString());
    Refusal refusal;
    auto session = (*store)->StartSession("V", 2, nullptr, &refusal);
    REQUIRE_MESSAGE(session.ok(), session.status().ToString());
    CHECK(session->needs_resync);
    auto promote = (*store)->Promote(false);
    REQUIRE(promote.ok());
    CHECK(promote->refused.find("resync") != std::string::npos);
    // The source's RESYNC ends "adopted": a reconnect mid-resync continues its stream.
    REQUIRE((*store)->Resync(session->token, 1, &refusal).ok());
    CHECK_FALSE(ReadStateFile(rig.store + "/state")->adopted);
    auto again = (*store)->StartSession("V", 2, nullptr, &refusal);
    REQUIRE(again.ok());
    CHECK_FALSE(again->needs_resync);
  }

  json report = ReadJson(rig.Saved() + "/report.json");
  CHECK(report["source"] == "web1");
  CHECK(report["journal"] == rig.journal);
  CHECK(report["after_seq"] == 3);
  CHECK(report["exact"] == true);
  CHECK(Seqs(report) == std::vector<uint64_t>{4, 5, 6, 7, 9});
  CHECK(report["records"][2]["op"] == "rename");
  CHECK(report["records"][2]["paths"] == json{"d/b", "d/c"});
  CHECK(report["records"][0]["time"].get<std::string>().size() == 24);
  CHECK(report["saved_files"] == json{"d/c", "ln"});
  CHECK(report["gone"] == json{"d/b", "gone"});
  const std::string text = ReadFileBytes(rig.Saved() + "/report.txt");
  CHECK(text.find("\n4 ") != std::string::npos);
  CHECK(text.find(" rename \"d/b\" -> \"d/c\"\n") != std::string::npos);
  CHECK(text.find("\n1 ") == std::string::npos);

  // The copies are the files as they are now, with mode and mtime; symlinks as symlinks.
  CHECK(ReadFileBytes(rig.Saved() + "/files/d/c") == "C-now");
  struct stat st {};
  REQUIRE(::stat((rig.Saved() + "/files/d/c").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_mtim.tv_sec == 1600000123);
  CHECK(st.st_mtim.tv_nsec == 456);
  CHECK(fs::read_symlink(rig.Saved() + "/files/ln") == "a");
  CHECK_FALSE(Exists(rig.Saved() + "/files/a"));  // seq 1-2 reached the other side

  // The journal and its side files moved aside; nothing deleted.
  CHECK_FALSE(Exists(rig.journal));
  CHECK_FALSE(Exists(rig.journal + ".fenced"));
  CHECK_FALSE(Exists(rig.journal + ".boot"));
  CHECK(Exists(rig.Moved()));
  CHECK(Exists(rig.Moved() + ".fenced"));
  CHECK(ReadFileBytes(rig.Moved() + ".boot") == "boot\n");
  REQUIRE(r.journal_moved_to);
  CHECK(*r.journal_moved_to == rig.Moved());
  REQUIRE(r.report);
  CHECK(*r.report == rig.Saved() + "/report.txt");
}

TEST_CASE("AfterSeqFlagOverridesTheFencedNote") {
  Rig rig;
  MakeJournal(rig.journal, History());
  FillBacking(rig);
  WriteFenced(rig, 2, 3);
  AdoptRequest req = rig.Request();
  req.after_seq = 5;
  AdoptResult r = MustAdopt(req);
  json report = ReadJson(rig.Saved() + "/report.json");
  CHECK(report["after_seq"] == 5);
  CHECK(report["after_from"] == "--after-seq");
  CHECK(Seqs(report) == std::vector<uint64_t>{6, 7, 9});
  CHECK(r.records == 3);
}

TEST_CASE("WithoutAKnownSeqEveryLiveRecordIsListedAndTheReportIsNotExact") {
  Rig rig;
  MakeJournal(rig.journal, History());
  FillBacking(rig);
  AdoptResult r = MustAdopt(rig.Request());
  CHECK_FALSE(r.exact);
  CHECK(r.epoch == 2);  // the journal's epoch + 1
  CHECK_FALSE(r.warnings.empty());
  json report = ReadJson(rig.Saved() + "/report.json");
  CHECK(report["after_seq"].is_null());
  CHECK(report["exact"] == false);
  CHECK(Seqs(report) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 9});
  CHECK(ReadFileBytes(rig.Saved() + "/files/a") == "A-now");
  CHECK(ReadFileBytes(rig.Saved() + "/report.txt").find("not known to have reached") !=
        std::string::npos);
}

TEST_CASE("RecordsFreedUnshippedMakeTheReportInexactButAdoptGoesOn") {
  Rig rig;
  MakeJournal(rig.journal, History(), 1, "web1", /*first_seq=*/10);  // seqs 10..18
  FillBacking(rig);
  WriteFenced(rig, 2, 3);  // the promoted side holds 1..3: 4..9 were freed unshipped
  AdoptResult r = MustAdopt(rig.Request());
  CHECK_FALSE(r.exact);
  json report = ReadJson(rig.Saved() + "/report.json");
  CHECK(report["exact"] == false);
  CHECK(report["first_live_seq"] == 10);
  CHECK(Seqs(report).front() == 10);
  CHECK(ReadFileBytes(rig.Saved() + "/report.txt").find("records 4..9 were freed") !=
        std::string::npos);
}

TEST_CASE("AnOutOfSyncMarkerMakesTheReportInexactAndMovesWithTheJournal") {
  Rig rig;
  MakeJournal(rig.journal, History());
  FillBacking(rig);
  WriteFenced(rig, 2, 3);
  WriteFileBytes(rig.journal + ".out-of-sync", "journal overflow\n");
  AdoptResult r = MustAdopt(rig.Request());
  CHECK_FALSE(r.exact);
  CHECK(Exists(rig.Moved() + ".out-of-sync"));
  CHECK_FALSE(Exists(rig.journal + ".out-of-sync"));
}

TEST_CASE("CopiesNeverFollowASymlinkOutOfTheImage") {
  Rig rig;
  TempDir outside;
  WriteFileBytes(outside / "secret", "outside");
  REQUIRE(::symlink(outside.path().c_str(), (rig.dir + "/out").c_str()) == 0);
  const c::Timespec t{1700000000, 0};
  MakeJournal(rig.journal, {c::WriteOp{"out/secret", 0, t, "x"}});
  MustAdopt(rig.Request());
  json report = ReadJson(rig.Saved() + "/report.json");
  CHECK(report["saved_files"].empty());
  REQUIRE(report["not_copied"].size() == 1);
  CHECK(report["not_copied"][0]["path"] == "out/secret");
  CHECK_FALSE(Exists(rig.Saved() + "/files/out/secret"));
}

TEST_CASE("ASecondAdoptWithADirRefusesBecauseTheStoreExists") {
  Rig rig;
  MakeJournal(rig.journal, History());
  MustAdopt(rig.Request());
  AdoptRequest again = rig.Request();
  again.journal.reset();
  again.now_ns = kNow + 5000000000;
  AdoptResult r = Adopt(again);
  CHECK(r.outcome == AdoptOutcome::kRefused);
  CHECK(r.error.find("already exists") != std::string::npos);
}

TEST_CASE("ALockedStoreRefusesAndChangesNothing") {
  Rig rig;
  MakeJournal(rig.journal, History());
  REQUIRE(fs::create_directories(rig.store));
  auto lock = LockStoreDir(rig.store);
  REQUIRE(lock.ok());
  AdoptResult r = Adopt(rig.Request());
  CHECK(r.outcome == AdoptOutcome::kRefused);
  CHECK(r.error.find("stop mirrord") != std::string::npos);
  CHECK(Exists(rig.journal));
  CHECK_FALSE(Exists(rig.store + "/image"));
  CHECK_FALSE(Exists(rig.store + "/state"));
}

TEST_CASE("AJournalOfAnotherSourceRefusesAndChangesNothing") {
  Rig rig;
  MakeJournal(rig.journal, History(), 1, "web2");
  AdoptResult r = Adopt(rig.Request());
  CHECK(r.outcome == AdoptOutcome::kRefused);
  CHECK(r.error.find("web2") != std::string::npos);
  CHECK(Exists(rig.journal));
  CHECK_FALSE(Exists(rig.store + "/image"));
  CHECK_FALSE(Exists(rig.store + "/state"));
  CHECK_FALSE(Exists(rig.store + "/saved"));
}

TEST_CASE("AMountedBackingOrANonDirectoryRefuses") {
  Rig rig;
  MakeJournal(rig.journal, History());
  SUBCASE("mounted") {
    WriteFileBytes(rig.mounts, "/dev/vda / ext4 rw 0 0\n" + rig.dir +
                                   " /mnt/web1 fuse.mirrorfs rw,nosuid 0 0\n");
    AdoptResult r = Adopt(rig.Request());
    CHECK(r.outcome == AdoptOutcome::kRefused);
    CHECK(r.error.find("unmount it first") != std::string::npos);
  }
  SUBCASE("not a directory") {
    AdoptRequest req = rig.Request();
    req.dir = rig.journal;
    AdoptResult r = Adopt(req);
    CHECK(r.outcome == AdoptOutcome::kRefused);
    CHECK(r.error.find("not a directory") != std::string::npos);
  }
  SUBCASE("image not empty") {
    REQUIRE(fs::create_directories(rig.store + "/image/x"));
    AdoptResult r = Adopt(rig.Request());
    CHECK(r.outcome == AdoptOutcome::kRefused);
    CHECK(r.error.find("not empty") != std::string::npos);
  }
  CHECK(Exists(rig.journal));
}

TEST_CASE("MountTableFieldsAreUnescaped") {
  TempDir tmp;
  const std::string dir = tmp / "a b";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  std::string escaped = tmp.path() + "/a\\040b";
  CHECK(MirrorfsMountOver(escaped + " /mnt/x\\040y fuse.mirrorfs rw 0 0\n", dir) == "/mnt/x y");
  CHECK_FALSE(MirrorfsMountOver(escaped + " /mnt/x fuse.other rw 0 0\n", dir));
  CHECK_FALSE(MirrorfsMountOver("/elsewhere /mnt/x fuse.mirrorfs rw 0 0\n", dir));
}

namespace {

// A store that `mirrord promote` left: promoted at epoch 2, an image, a log, a memory.
void MakePromotedStore(const Rig& rig, bool promoted = true) {
  REQUIRE(fs::create_directories(rig.store + "/image/d"));
  REQUIRE(fs::create_directories(rig.store + "/log"));
  WriteFileBytes(rig.store + "/log/00000000000000000001.seg", "segment");
  WriteFileBytes(rig.store + "/memory", "memory");
  WriteFileBytes(rig.store + "/image/d/c", "C-promoted");
  SourceState s;
  s.source_id = "web1";
  s.volume_id = "V";
  s.epoch = 2;
  s.applied_seq = 40;
  s.replay_through = 40;
  s.promoted = promoted;
  s.promoted_seq = promoted ? 40 : 0;
  REQUIRE(WriteStateFile(rig.store + "/state", s).ok());
}

}  // namespace

TEST_CASE("SwitchBackTurnsThePromotedStoreIntoADestination") {
  Rig rig;
  MakePromotedStore(rig);
  const c::Timespec t{1700000000, 0};
  // The promoted side's own journal (epoch 2); the other side was promoted at epoch 3.
  MakeJournal(rig.journal, {c::WriteOp{"d/c", 0, t, "x"}, c::UnlinkOp{"d/e", t}}, 2);
  AdoptRequest req = rig.Request(/*with_dir=*/false);
  req.after_seq = 1;
  AdoptResult r = MustAdopt(req);
  CHECK(r.epoch == 3);
  auto state = ReadStateFile(rig.store + "/state");
  REQUIRE(state.ok());
  CHECK_FALSE(state->promoted);
  CHECK(state->epoch == 3);
  CHECK(state->volume_id == "V");
  CHECK(state->applied_seq == 0);
  CHECK(state->resync_active);
  CHECK(fs::is_directory(fs::symlink_status(rig.store + "/image")));  // the image stays
  CHECK(ReadFileBytes(rig.store + "/image/d/c") == "C-promoted");
  CHECK_FALSE(Exists(rig.store + "/log"));
  CHECK(ReadFileBytes(rig.Saved() + "/log/00000000000000000001.seg") == "segment");
  CHECK_FALSE(Exists(rig.store + "/memory"));
  json report = ReadJson(rig.Saved() + "/report.json");
  CHECK(Seqs(report) == std::vector<uint64_t>{2});
  CHECK(report["gone"] == json{"d/e"});
  CHECK(Exists(rig.Moved()));
}

TEST_CASE("SwitchBackRefusesAStoreThatIsNotPromoted") {
  Rig rig;
  MakePromotedStore(rig, /*promoted=*/false);
  AdoptRequest req = rig.Request(false);
  req.journal.reset();
  AdoptResult r = Adopt(req);
  CHECK(r.outcome == AdoptOutcome::kRefused);
  CHECK(r.error.find("not promoted") != std::string::npos);
  CHECK(Exists(rig.store + "/log/00000000000000000001.seg"));
  CHECK(Exists(rig.store + "/memory"));
}

TEST_CASE("AdoptCliExitCodes") {
  Rig rig;
  auto run = [&](std::vector<std::string> args, std::string* out_text = nullptr) {
    std::ostringstream out, err;
    int code = AdoptCommand(args, out, err);
    if (out_text != nullptr) *out_text = out.str();
    if (code != 0) CHECK_MESSAGE(!err.str().empty(), "a failure says why");
    return code;
  };
  const std::string sd = "--state-dir=" + rig.sd;
  CHECK(run({}) == kAdoptUsageError);
  CHECK(run({"web1", "--bogus"}) == kAdoptUsageError);
  CHECK(run({"web1", "--journal", rig.journal, "--after-seq", "x"}) == kAdoptUsageError);
  CHECK(run({"web1", "a", "b"}) == kAdoptUsageError);
  CHECK(run({".hidden", rig.dir}) == kAdoptUsageError);
  CHECK(run({"web1", "--after-seq", "3"}) == kAdoptUsageError);  // needs --journal
  CHECK(run({"--help"}) == kAdoptDone);
  // No store without DIR: failed; a journal that is not there: failed.
  CHECK(run({"web1", sd}) == kAdoptFailed);
  CHECK(run({"web1", rig.dir, sd, "--journal", rig.journal}) == kAdoptFailed);
  // Done, with one JSON object.
  MakeJournal(rig.journal, History());
  FillBacking(rig);
  std::string out;
  REQUIRE(run({"web1", rig.dir, sd, "--journal", rig.journal, "--after-seq", "3", "--json"},
              &out) == kAdoptDone);
  json j = json::parse(out);
  CHECK(j["source"] == "web1");
  CHECK(j["store"] == rig.store);
  CHECK(j["image"] == fs::canonical(rig.dir).string());
  CHECK(j["epoch"] == 2);
  CHECK(j["records"] == 5);
  CHECK(j["saved_files"] == 2);
  CHECK(j["exact"] == true);
  CHECK(j["report"].get<std::string>().ends_with("/report.txt"));
  CHECK(j["journal_moved_to"].get<std::string>().find(".adopted-") != std::string::npos);
  // Again: the store exists now.
  CHECK(run({"web1", rig.dir, sd}) == kAdoptRefused);
  // Without DIR on a store that is not promoted: refused.
  CHECK(run({"web1", sd}) == kAdoptRefused);
}
