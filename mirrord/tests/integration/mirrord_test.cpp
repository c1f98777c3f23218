// Integration tests: a real mirrord process on 127.0.0.1 (ephemeral port) and the test
// client. Each test starts its own mirrord in its own TempDir and kills it by PID.
#include "mirrord/tests/integration/daemon_fixture.h"

using namespace mirror::d::test;

TEST_CASE("ThreeSourcesStreamAtOnceThenSyncGiveExactImages") {
  Daemon d;
  d.StartConfigured();
  const uint64_t n = 100000;
  const std::vector<std::string> ids = {"s1", "s2", "s3"};
  std::vector<std::vector<std::string>> streams;
  for (size_t k = 0; k < ids.size(); ++k) streams.push_back(MakeStream(n, 1));
  std::vector<std::string> errors(ids.size());
  std::vector<std::thread> threads;
  for (size_t k = 0; k < ids.size(); ++k) {
    threads.emplace_back([&, k] {
      auto client = TestClient::Connect(d.proc->port(), ids[k], kSecret);
      if (!client.ok()) return void(errors[k] = client.status().ToString());
      for (size_t i = 0; i < n; i += 500) {
        if (auto s = (*client)->SendRecords(streams[k], i, std::min<size_t>(500, n - i)); !s.ok()) {
          return void(errors[k] = s.ToString());
        }
      }
      auto applied = (*client)->Sync(n, std::chrono::seconds(120));
      if (!applied.ok()) return void(errors[k] = applied.status().ToString());
      if (*applied != n) errors[k] = "applied " + std::to_string(*applied);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t k = 0; k < ids.size(); ++k)
    CHECK_MESSAGE(errors[k].empty(), ids[k] << ": " << errors[k]);
  const TreeSnapshot want = DirectApply(streams[0], n);
  for (const auto& id : ids) {
    std::string diff =
        mirror::test::FirstDifference(want, SnapshotTree(d.state() + "/" + id + "/image"));
    CHECK_MESSAGE(diff.empty(), id << ": " << diff);
  }
  std::string out;
  CHECK(RunStatus({"--state-dir", d.state(), "--json", "s1"}, &out) == 1);  // disconnected now
  CHECK(out.find("\"applied_seq\":100000") != std::string::npos);
}

TEST_CASE("KillNineWhileStreamingThenRestartLosesNothingAcknowledged") {
  Daemon d;
  d.StartQuick();
  const uint64_t n = 30000;
  const std::vector<std::string> recs = MakeStream(n);
  uint64_t acked = 0;
  {
    auto client = d.Connect("k1");
    Stream(*client, recs, 0, n / 2);
    auto ack = client->WaitAck(n / 4, false);
    REQUIRE(ack.ok());
    acked = ack->received_seq;
    Stream(*client, recs, n / 2, n * 3 / 4);
    d.proc->Kill9();  // somewhere in the middle of receiving and flushing
  }
  d.Restart();
  auto client = d.Connect("k1");
  const uint64_t durable = client->welcome().durable_seq;
  CHECK(durable >= acked);  // even received-only acks survive a process crash
  CHECK(client->welcome().resume_seq == durable + 1);
  Stream(*client, recs, durable, n);
  auto applied = client->Sync(n, std::chrono::seconds(60));
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(d.state() + "/k1/image") == DirectApply(recs, n));
}

TEST_CASE("KillNineWhileApplyingThenRestartAppliesOnce") {
  Daemon d;
  d.StartQuick();
  const uint64_t n = 60000;
  std::vector<std::string> recs = MakeStream(n);
  {
    auto client = d.Connect("k2");
    Stream(*client, recs, 0, n);
    REQUIRE(client->WaitAck(n, true).ok());
    REQUIRE(client->Send(c::SyncMsg{n}).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    d.proc->Kill9();
  }
  d.Restart();
  auto client = d.Connect("k2");
  CHECK(client->welcome().durable_seq == n);
  auto applied = client->Sync(n, std::chrono::seconds(60));
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(d.state() + "/k2/image") == DirectApply(recs, n));
}

TEST_CASE("SigtermFlushesMemoryAndStatusReportsTheDaemon") {
  Daemon d;
  d.StartConfigured(",\"flush_delay\":\"1h\"");
  const std::vector<std::string> recs = MakeStream(100);
  std::string out;
  auto client = d.Connect("s1");
  Stream(*client, recs, 0, 100);
  REQUIRE(client->WaitAck(100, false).ok());
  CHECK(RunStatus({"--state-dir", d.state(), "s1"}, &out) == 0);  // connected, healthy
  CHECK(out.find("source s1: connected") != std::string::npos);
  CHECK(RunStatus({"--state-dir", d.state(), "--json", "s1"}, &out) == 0);
  CHECK(out.find("\"received_seq\":100") != std::string::npos);
  CHECK(out.find("\"durable_seq\":0") != std::string::npos);  // flush_delay 1h: memory only
  CHECK(RunStatus({"--state-dir", d.state(), "nosuch"}, &out) == 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(RunStatus({"--state-dir", d.state(), "--max-lag", "0", "s1"}, &out) == 1);  // unapplied
  CHECK(RunStatus({"--state-dir", d.state(), "--max-lag", "3600", "s1"}, &out) == 0);
  CHECK(d.proc->Terminate() == 0);
  auto err = client->ExpectError();
  if (err.ok()) CHECK(err->code == WireError::kShuttingDown);
  CHECK(RunStatus({"--state-dir", d.state()}, &out) == 3);  // not running
  // The clean stop flushed memory into the log.
  auto log = c::SegmentLog::Open(d.state() + "/s1/log");
  REQUIRE(log.ok());
  CHECK((*log)->last_seq() == 100);
}

TEST_CASE("PingPongAndReconnectReplacesTheOldConnection") {
  Daemon d;
  d.StartQuick();
  const std::vector<std::string> recs = MakeStream(20);
  auto old_client = d.Connect("r1");
  REQUIRE(old_client->Send(c::PingMsg{42}).ok());
  auto pong = old_client->Read();
  REQUIRE(pong.ok());
  REQUIRE(std::holds_alternative<c::PongMsg>(*pong));
  CHECK(std::get<c::PongMsg>(*pong).token == 42);
  Stream(*old_client, recs, 0, 10);
  REQUIRE(old_client->WaitAck(10, false).ok());
  // The source reconnects (say its old link hung): the new session resumes after
  // everything received, which is durable now.
  auto client = d.Connect("r1");
  CHECK(client->welcome().durable_seq == 10);
  CHECK(client->welcome().resume_seq == 11);
  // The old connection can no longer add records.
  REQUIRE(old_client->SendRecords(recs, 10, 1).ok());
  auto err = old_client->ExpectError();
  REQUIRE(err.ok());
  CHECK(err->code == WireError::kProtocol);
  CHECK(err->message.find("replaced") != std::string::npos);
  Stream(*client, recs, 10, 20);
  auto applied = client->Sync(20);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(d.state() + "/r1/image") == DirectApply(recs, 20));
}

TEST_CASE("BackpressureWithATinyMemoryLosesNothing") {
  // 512 KiB of memory against 32 MB sent as fast as the socket takes it: mirrord must stop
  // reading while its halves are full, and resume, many times over.
  Daemon d;
  d.StartConfigured(",\"memory_size\":\"512K\"");
  std::vector<std::string> recs;
  const c::Timespec t{1700000000, 0};
  recs.push_back(OpRec(1, c::CreateOp{"big", S_IFREG | 0644, 0, 0, t, t}));
  const std::string data(16 * 1024, 'z');
  for (uint64_t s = 2; s <= 2000; ++s) {
    auto bytes = c::EncodeRecord({s, 1, 1}, c::WriteOp{"big", (s - 2) * data.size(), t, data});
    REQUIRE(bytes.ok());
    recs.push_back(*bytes);
  }
  auto client = d.Connect("s3");
  std::atomic<bool> sent{false};
  std::string send_error;
  std::thread sender([&] {
    for (size_t i = 0; i < recs.size(); i += 32) {
      if (auto s = client->SendRecords(recs, i, std::min<size_t>(32, recs.size() - i)); !s.ok()) {
        send_error = s.ToString();
        break;
      }
    }
    sent = true;
  });
  auto ack = client->WaitAck(recs.size(), true, std::chrono::seconds(60));
  sender.join();
  REQUIRE_MESSAGE(send_error.empty(), send_error);
  REQUIRE_MESSAGE(ack.ok(), ack.status().ToString());
  auto applied = client->Sync(recs.size(), std::chrono::seconds(60));
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(SnapshotTree(d.state() + "/s3/image") == DirectApply(recs, recs.size()));
}
