// Integration tests of refusals: a real mirrord process on 127.0.0.1 (ephemeral port) and the test
// client. Each test starts its own mirrord in its own TempDir and kills it by PID.
#include "mirrord/tests/integration/daemon_fixture.h"

using namespace mirror::d::test;

TEST_CASE("HandshakeRefusalsWrongSecretReplayUnknownSourceStaleEpoch") {
  Daemon d;
  d.StartConfigured();
  auto wrong = TestClient::Connect(d.proc->port(), "s1", "not the secret");
  CHECK(wrong.status().message().find("wrong-secret") != std::string::npos);
  auto other = TestClient::Connect(d.proc->port(), "s1", "another secret");  // o's secret
  CHECK(other.status().message().find("wrong-secret") != std::string::npos);
  auto unknown = TestClient::Connect(d.proc->port(), "nobody", kSecret);
  CHECK(unknown.status().message().find("unknown-source") != std::string::npos);

  // A replayed AUTH: captured from one connection, sent on another with the same HELLO.
  c::HelloMsg hello;
  hello.source_id = "s1";
  hello.volume_id = "vol";
  hello.epoch = 1;
  hello.client_nonce.fill(7);
  auto first = TestClient::Dial(d.proc->port());
  REQUIRE(first.ok());
  REQUIRE((*first)->Send(hello).ok());
  auto ch = (*first)->Read();
  REQUIRE(ch.ok());
  auto proof = c::ClientProof(kSecret, hello, std::get<c::ChallengeMsg>(*ch).server_nonce);
  REQUIRE(proof.ok());
  REQUIRE((*first)->Send(c::AuthMsg{*proof}).ok());
  auto welcome = (*first)->Read();
  REQUIRE(welcome.ok());
  CHECK(std::holds_alternative<c::WelcomeMsg>(*welcome));
  auto second = TestClient::Dial(d.proc->port());
  REQUIRE(second.ok());
  REQUIRE((*second)->Send(hello).ok());
  REQUIRE((*second)->Read().ok());  // a fresh CHALLENGE
  REQUIRE((*second)->Send(c::AuthMsg{*proof}).ok());
  auto err = (*second)->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kWrongSecret);

  // Epoch 3 raises the stored epoch; epoch 2 is then fenced.
  { auto c3 = d.Connect("s2", 3); }
  auto stale = TestClient::Connect(d.proc->port(), "s2", kSecret, 2);
  CHECK(stale.status().message().find("stale-epoch") != std::string::npos);
  CHECK(d.proc->LogText().find("wrong-secret") != std::string::npos);
}

TEST_CASE("BadInputsAreRefusedWithTheirErrorAndEarlierDataStays") {
  Daemon d;
  d.StartConfigured();
  const std::vector<std::string> recs = MakeStream(50);
  {
    auto client = d.Connect("bad");
    Stream(*client, recs, 0, 40);
    REQUIRE(client->WaitAck(40, true).ok());
  }
  const uint64_t next = 41;
  auto rec = [&](uint64_t seq) { return MakeStream(seq)[seq - 1]; };
  ExpectRefused(d, "bad", RecordsFrame({rec(next + 1)}), WireError::kSequenceGap);
  ExpectRefused(d, "bad", RecordsFrame({rec(next - 3)}), WireError::kSequenceGap);
  std::string bad_crc = rec(next);
  bad_crc[bad_crc.size() - 1] ^= 1;
  ExpectRefused(d, "bad", RecordsFrame({bad_crc}), WireError::kBadCrc);
  std::string frame = RecordsFrame({rec(next)});
  frame[frame.size() - 1] ^= 1;  // the frame's CRC fails (the record's too, but first the frame)
  ExpectRefused(d, "bad", frame, WireError::kBadCrc);
  std::string huge_header = RecordsFrame({rec(next)}).substr(0, 24);
  c::StoreLE<uint32_t>(huge_header.data() + 4, 512u << 20);
  ExpectRefused(d, "bad", huge_header, WireError::kOversized);
  auto big =
      c::EncodeRecord({next, 1, 1}, c::WriteOp{"d/f1", 0, {1, 0}, std::string(300 * 1024, 'x')});
  REQUIRE(big.ok());
  ExpectRefused(d, "bad", RecordsFrame({*big}), WireError::kOversized);
  std::string unknown_frame = c::EncodeFrame(c::PingMsg{1}).value();
  c::StoreLE<uint16_t>(unknown_frame.data() + 12, 77);
  ExpectRefused(d, "bad", unknown_frame, WireError::kUnknownType);
  std::string unknown_rec = rec(next);
  c::StoreLE<uint16_t>(unknown_rec.data() + 8, 99);
  ExpectRefused(d, "bad", RecordsFrame({Reseal(unknown_rec)}), WireError::kUnknownType);
  std::string escape = OpRec(next, c::UnlinkOp{"ab/cd", {1, 0}});
  std::memcpy(escape.data() + 44, "../x/", 5);
  ExpectRefused(d, "bad", RecordsFrame({Reseal(escape)}), WireError::kEscape);
  std::string dev =
      OpRec(next, c::MknodOp{"d/null", S_IFCHR | 0600, makedev(1, 3), 0, 0, {1, 0}, {1, 0}});
  ExpectRefused(d, "bad", RecordsFrame({dev}), WireError::kDeviceRefused);
  ExpectRefused(d, "bad", RecordsFrame({rec(next)}), WireError::kStaleEpoch, 2);  // epoch 1 record
  ExpectRefused(d, "bad", c::EncodeFrame(c::SyncMsg{999}).value(), WireError::kProtocol, 2);
  ExpectRefused(d, "bad", c::EncodeFrame(c::WelcomeMsg{}).value(), WireError::kProtocol, 2);

  // The same device is fine for a source allowed to create devices.
  {
    auto client = d.Connect("dev");
    REQUIRE(
        client
            ->SendRecords(
                {OpRec(1, c::MknodOp{"null", S_IFCHR | 0600, makedev(1, 3), 0, 0, {1, 0}, {1, 0}})},
                0, 1)
            .ok());
    auto applied = client->Sync(1);
    REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  }
  struct stat st {};
  REQUIRE(lstat((d.state() + "/dev/image/null").c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));

  // Everything before the refusals is intact, durable, and applies.
  auto client = d.Connect("bad", 2);
  CHECK(client->welcome().durable_seq == 40);
  CHECK(client->welcome().resume_seq == 41);
  CHECK(client->welcome().epoch == 2);
  auto applied = client->Sync(40);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(d.state() + "/bad/image") == DirectApply(recs, 40));
  const std::string log = d.proc->LogText();
  for (const char* code : {"sequence-gap", "bad-crc", "oversized", "unknown-type", "escape",
                           "device-refused", "stale-epoch", "protocol"}) {
    CHECK_MESSAGE(log.find(std::string("source 'bad': refused 127.0.0.1:")) != std::string::npos,
                  code);
    CHECK_MESSAGE(log.find(code) != std::string::npos, code);
  }
}

TEST_CASE("SilentPeersAreClosedByTheTimeouts") {
  Daemon d;
  d.StartConfigured(",\"handshake_timeout\":\"300ms\",\"idle_timeout\":\"500ms\"");
  auto silent = TestClient::Dial(d.proc->port());
  REQUIRE(silent.ok());
  const auto t0 = std::chrono::steady_clock::now();
  CHECK((*silent)->WaitClosed(std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  auto idle = d.Connect("s1");
  CHECK(idle->WaitClosed(std::chrono::seconds(5)));
  CHECK(d.proc->LogText().find("idle for too long") != std::string::npos);
  // A frame header announcing more than 8 KiB before authentication is refused at once.
  auto big = TestClient::Dial(d.proc->port());
  REQUIRE(big.ok());
  std::string header = c::EncodeFrame(c::PingMsg{1}).value().substr(0, 24);
  c::StoreLE<uint32_t>(header.data() + 4, 64 * 1024);
  REQUIRE((*big)->SendRaw(header).ok());
  auto err = (*big)->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kOversized);
}

TEST_CASE("FramesKeepAConnectionOpenPastTheIdleTimeoutThenSilenceClosesIt") {
  Daemon d;
  d.StartConfigured(",\"idle_timeout\":\"400ms\"");
  const std::vector<std::string> recs = MakeStream(12);
  auto client = d.Connect("s1");
  // A RECORDS frame every 100 ms for 1.2 s (three idle timeouts): each is acknowledged.
  auto last_send = std::chrono::steady_clock::now();
  for (size_t i = 0; i < recs.size(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    last_send = std::chrono::steady_clock::now();
    REQUIRE(client->SendRecords(recs, i, 1).ok());
    auto ack = client->WaitAck(i + 1, false, std::chrono::seconds(5));
    REQUIRE_MESSAGE(ack.ok(), "record " << i + 1 << ": " << ack.status().ToString());
  }
  CHECK(d.proc->LogText().find("idle for too long") == std::string::npos);
  // Then silence: closed one idle timeout after the last frame, not before.
  CHECK(client->WaitClosed(std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - last_send >= std::chrono::milliseconds(400));
  CHECK(d.proc->LogText().find("idle for too long") != std::string::npos);
}

TEST_CASE("WithoutAnIdleTimeoutASilentSessionOutlivesTheHandshakeTimeout") {
  Daemon d;
  d.StartConfigured(",\"handshake_timeout\":\"200ms\",\"idle_timeout\":\"0\"");
  auto client = d.Connect("s1");
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  REQUIRE(client->Send(c::PingMsg{7}).ok());
  auto pong =
      client->ReadUntil([](const c::Message& m) { return std::holds_alternative<c::PongMsg>(m); },
                        std::chrono::seconds(5));
  REQUIRE_MESSAGE(pong.ok(), pong.status().ToString());
  CHECK(std::get<c::PongMsg>(*pong).token == 7);
  CHECK(d.proc->LogText().find("idle for too long") == std::string::npos);
}

TEST_CASE("ConnectionsOverTheLimitAreClosed") {
  Daemon d;
  d.StartConfigured(",\"max_connections\":2");
  auto a = d.Connect("s1");
  auto b = d.Connect("s2");
  auto third = TestClient::Dial(d.proc->port());
  REQUIRE(third.ok());
  CHECK((*third)->WaitClosed(std::chrono::seconds(5)));
  CHECK(d.proc->LogText().find("too many connections") != std::string::npos);
  a.reset();  // a slot frees once mirrord notices the close
  for (int i = 0; i < 100; ++i) {
    auto again = TestClient::Connect(d.proc->port(), "s3", kSecret);
    if (again.ok()) break;
    REQUIRE(i < 99);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}
