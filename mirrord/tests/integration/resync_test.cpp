// Integration tests of resync (RESYNC, RESYNC_DONE) and the image queries
// (MANIFEST_REQUEST, SUMS_REQUEST): a real mirrord process on 127.0.0.1 and the test
// client. Each test starts its own mirrord in its own TempDir and kills it by PID.
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/manifest.h"
#include "mirrord/state_file.h"
#include "mirrord/tests/integration/daemon_fixture.h"

using namespace mirror::d::test;

namespace {

// `mirrord status --json SOURCE`: the source's object, and the exit code.
nlohmann::json SourceStatus(Daemon& d, const std::string& id, int* code) {
  std::string out;
  *code = RunStatus({"--state-dir", d.state(), "--json", id}, &out);
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  REQUIRE_MESSAGE(j.is_object(), out);
  REQUIRE(j["sources"].size() == 1);
  return j["sources"][0];
}

// The stream a source sends after a resync: writes into d/f1 (MakeStream's files exist).
std::vector<std::string> NewStream(uint64_t first, uint64_t n) {
  std::vector<std::string> out;
  for (uint64_t s = first; s < first + n; ++s) out.push_back(WriteRec(s, 1, 64, "d/f1"));
  return out;
}

// A frame of `type` with a hand-made payload (for payloads our encoder refuses).
std::string RawFrame(uint16_t type, const std::string& payload) {
  std::string f = "MFS1";
  c::AppendLE(f, static_cast<uint32_t>(payload.size()));
  c::AppendLE(f, uint32_t{0});
  c::AppendLE(f, type);
  c::AppendLE(f, uint16_t{0});
  c::AppendLE(f, uint64_t{0});
  f += payload;
  c::StoreLE(f.data() + 8, c::crc32c::Mask(c::crc32c::Value(f.data() + 12, f.size() - 12)));
  return f;
}

std::string Image(Daemon& d, const std::string& id) { return d.state() + "/" + id + "/image"; }

}  // namespace

TEST_CASE("ResyncDropsWhatWasNotAppliedAndResyncDoneThenSyncEndsIt") {
  Daemon d;
  d.StartConfigured();
  const std::vector<std::string> recs = MakeStream(40);
  auto client = d.Connect("s1");
  Stream(*client, recs, 0, 40);
  auto applied = client->Sync(20);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  REQUIRE(*applied == 20);  // 21..40 received and durable, not applied

  c::Status resync = client->Resync(100);
  REQUIRE_MESSAGE(resync.ok(), resync.ToString());
  auto state = mirror::d::ReadStateFile(d.state() + "/s1/state");
  REQUIRE(state.ok());
  CHECK(state->resync_active);
  CHECK(state->applied_seq == 99);
  int code = 0;
  nlohmann::json st = SourceStatus(d, "s1", &code);
  CHECK(code == 1);  // not consistent
  CHECK(st["state"] == "resync");
  CHECK(st["resync"] == true);
  CHECK(st["resync_until_seq"] == 0);
  CHECK(st["received_seq"] == 99);
  CHECK(st["applied_seq"] == 99);

  // The new stream starts at 100; the image holds only what was applied before.
  const std::vector<std::string> next = NewStream(100, 15);
  Stream(*client, next, 0, 10);
  applied = client->Sync(109);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(*applied == 109);
  std::vector<std::string> want(recs.begin(), recs.begin() + 20);
  want.insert(want.end(), next.begin(), next.begin() + 10);
  CHECK(SnapshotTree(Image(d, "s1")) == DirectApply(want, want.size()));

  // RESYNC_DONE names the end; the resync ends with the SYNC that applies it.
  Stream(*client, next, 10, 15);
  REQUIRE(client->Send(c::ResyncDoneMsg{114}).ok());
  REQUIRE(client->Sync(109).ok());  // answered after RESYNC_DONE was stored
  st = SourceStatus(d, "s1", &code);
  CHECK(st["state"] == "resync");
  CHECK(st["resync_until_seq"] == 114);
  applied = client->Sync(114);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  st = SourceStatus(d, "s1", &code);
  CHECK(code == 0);
  CHECK(st["state"] == "connected");
  CHECK(st["resync"] == false);
  want.insert(want.end(), next.begin() + 10, next.end());
  CHECK(SnapshotTree(Image(d, "s1")) == DirectApply(want, want.size()));
  const std::string log = d.proc->LogText();
  CHECK(log.find("resync: the stream restarts at seq 100; dropped received records 21..40") !=
        std::string::npos);
  CHECK(log.find("resync complete") != std::string::npos);
}

TEST_CASE("AfterAResyncTheOldStreamIsAGapAndTheNewSeqsHoldOnReconnect") {
  Daemon d;
  d.StartConfigured();
  const std::vector<std::string> recs = MakeStream(12);
  {
    auto client = d.Connect("s2");
    Stream(*client, recs, 0, 10);
    REQUIRE(client->WaitAck(10, false).ok());
    REQUIRE(client->Resync(50).ok());
    REQUIRE(client->SendRecords(recs, 10, 1).ok());  // seq 11: the old stream's next
    auto err = client->ExpectError();
    REQUIRE_MESSAGE(err.ok(), err.status().ToString());
    CHECK(err->code == WireError::kSequenceGap);
    CHECK(client->WaitClosed());
  }
  auto client = d.Connect("s2");
  CHECK(client->welcome().durable_seq == 49);
  CHECK(client->welcome().resume_seq == 50);
  CHECK(client->welcome().applied_seq == 49);
  // RESYNC_DONE beyond what was received is refused.
  REQUIRE(client->Send(c::ResyncDoneMsg{60}).ok());
  auto err = client->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kProtocol);
  CHECK(client->WaitClosed());
  // A RESYNC at seq 0 is malformed.
  client = d.Connect("s2");
  std::string zero;
  c::AppendLE(zero, uint64_t{0});
  REQUIRE(client->SendRaw(RawFrame(12, zero)).ok());
  err = client->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kProtocol);
  // The image never saw a record.
  CHECK(SnapshotTree(Image(d, "s2")).size() == 1);  // the root only
}

TEST_CASE("ManifestRequestAppliesWhatCameBeforeItAndMatchesTheImage") {
  Daemon d;
  d.StartConfigured();
  const std::vector<std::string> recs = MakeStream(60);
  auto client = d.Connect("s1");
  Stream(*client, recs, 0, 60);
  std::vector<size_t> frames;
  auto manifest = client->Manifest(7, c::kManifestWantContentHashes, &frames);
  REQUIRE_MESSAGE(manifest.ok(), manifest.status().ToString());
  CHECK(frames.size() == 1);
  c::ManifestOptions hashes;
  hashes.content_hashes = true;
  auto direct = c::BuildManifest(Image(d, "s1"), hashes);
  REQUIRE(direct.ok());
  CHECK(*manifest == *direct);
  CHECK(manifest->size() == 9);  // d and its 8 files
  CHECK(manifest->at(1).content_hash.size() == c::kManifestHashBytes);

  // Records sent after a request are not in its answer; they are applied at the next one.
  const c::Timespec t{1700000000, 0};
  const std::vector<std::string> late = {
      OpRec(61, c::CreateOp{"late", S_IFREG | 0600, 0, 0, t, t})};
  REQUIRE(client->Send(c::ManifestRequestMsg{8, 0}).ok());
  REQUIRE(client->SendRecords(late, 0, 1).ok());
  manifest = client->ReadManifest(8);
  REQUIRE_MESSAGE(manifest.ok(), manifest.status().ToString());
  CHECK(manifest->size() == 9);
  CHECK(manifest->at(1).content_hash.empty());  // not asked for
  manifest = client->Manifest(9, 0);
  REQUIRE(manifest.ok());
  REQUIRE(manifest->size() == 10);
  CHECK(manifest->at(9).path == "late");

  // An empty image: one frame, no entries.
  auto empty_client = d.Connect("s2");
  frames.clear();
  manifest = empty_client->Manifest(1, 0, &frames);
  REQUIRE(manifest.ok());
  CHECK(manifest->empty());
  CHECK(frames == std::vector<size_t>{0});

  // Undefined flag bits are a protocol error.
  std::string bad;
  c::AppendLE(bad, uint64_t{2});
  c::AppendLE(bad, uint32_t{2});
  REQUIRE(empty_client->SendRaw(RawFrame(14, bad)).ok());
  auto err = empty_client->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kProtocol);
}

TEST_CASE("ManifestOfThousandsOfEntriesComesInSeveralFrames") {
  Daemon d;
  d.StartConfigured();
  // Long names make each entry ~1 KB: 3000 files are ~3 MB of entries.
  const c::Timespec t{1700000000, 0};
  const std::string a(250, 'a'), b(250, 'b'), cc(250, 'c');
  std::vector<std::string> recs;
  uint64_t seq = 1;
  for (const std::string& dir : {a, a + "/" + b, a + "/" + b + "/" + cc}) {
    recs.push_back(OpRec(seq++, c::MkdirOp{dir, S_IFDIR | 0755, 0, 0, t, t}));
  }
  const std::string parent = a + "/" + b + "/" + cc + "/";
  for (int i = 0; i < 3000; ++i) {
    std::string name = "f" + std::to_string(i) + "-";
    name.resize(240, 'x');
    recs.push_back(OpRec(seq++, c::CreateOp{parent + name, S_IFREG | 0644, 0, 0, t, t}));
  }
  // Records that follow the request are read while the manifest is built and sent.
  std::vector<std::string> more = {OpRec(seq, c::CreateOp{"more", S_IFREG | 0644, 0, 0, t, t})};
  for (uint64_t s = seq + 1; s < seq + 500; ++s) more.push_back(WriteRec(s, 1, 100, "more"));
  auto client = d.Connect("s3");
  Stream(*client, recs, 0, recs.size());
  REQUIRE(client->Send(c::ManifestRequestMsg{42, 0}).ok());
  Stream(*client, more, 0, more.size(), 50);
  std::vector<size_t> frames;
  auto manifest = client->ReadManifest(42, &frames, std::chrono::seconds(60));
  REQUIRE_MESSAGE(manifest.ok(), manifest.status().ToString());
  CHECK(manifest->size() == recs.size());
  CHECK(frames.size() >= 3);
  size_t total = 0;
  for (size_t bytes : frames) {
    CHECK(bytes <= c::kManifestChunkBytes);
    CHECK(bytes > 0);
    total += bytes;
  }
  auto direct = c::BuildManifest(Image(d, "s3"), c::ManifestOptions{});
  REQUIRE(direct.ok());
  CHECK(*manifest == *direct);
  std::string encoded;
  c::EncodeManifestEntries(*direct, &encoded);
  CHECK(total == encoded.size());
  auto applied = client->Sync(more.size() + recs.size());
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(std::filesystem::file_size(Image(d, "s3") + "/more") > 0);
}

TEST_CASE("SumsRequestsForAFileAMissingPathADirectoryAndAnEscape") {
  Daemon d;
  d.StartConfigured();
  const c::Timespec t{1700000000, 0};
  std::string data(20000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 % 251);
  const std::vector<std::string> recs = {
      OpRec(1, c::MkdirOp{"d", S_IFDIR | 0755, 0, 0, t, t}),
      OpRec(2, c::CreateOp{"d/f", S_IFREG | 0644, 0, 0, t, t}),
      OpRec(3, c::WriteOp{"d/f", 0, t, data}),
      OpRec(4, c::MkdirOp{"d/sub", S_IFDIR | 0755, 0, 0, t, t}),
  };
  auto client = d.Connect("s1");
  Stream(*client, recs, 0, recs.size());
  auto sums = client->Sums(1, "d/f", 4096);  // applies the records first
  REQUIRE_MESSAGE(sums.ok(), sums.status().ToString());
  CHECK(sums->error.empty());
  CHECK(sums->size == data.size());
  c::UniqueFd fd(::open((Image(d, "s1") + "/d/f").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto direct = c::FileBlockSums(fd.get(), 4096);
  REQUIRE(direct.ok());
  REQUIRE(direct->size() == 5);
  std::string want;
  for (const c::BlockSum& s : *direct)
    want.append(reinterpret_cast<const char*>(s.data()), s.size());
  CHECK(sums->sums == want);

  sums = client->Sums(2, "d/missing", 4096);
  REQUIRE(sums.ok());
  CHECK(sums->error == "not found");
  CHECK(sums->sums.empty());
  sums = client->Sums(3, "d/sub", 8192);
  REQUIRE(sums.ok());
  CHECK(sums->error == "not a regular file");

  // A block size that is not a power of two is malformed.
  std::string bad;
  c::AppendLE(bad, uint64_t{4});
  c::AppendLE(bad, uint32_t{3});
  bad += "d/f";
  c::AppendLE(bad, uint32_t{5000});
  auto other = d.Connect("s2");
  REQUIRE(other->SendRaw(RawFrame(16, bad)).ok());
  auto err = other->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kProtocol);

  // A path with ".." is an escape attempt: ERROR and close, as for records.
  sums = client->Sums(5, "d/../d/f", 4096);
  REQUIRE_FALSE(sums.ok());
  CHECK(sums.status().message().find("escape") == 0);
  CHECK(client->WaitClosed());
}
