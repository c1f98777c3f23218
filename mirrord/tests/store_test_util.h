// Helpers for the SourceStore tests: small options, sessions, feeding records, and the
// tree that applying records directly gives.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/apply.h"
#include "common/crc32c.h"
#include "common/endian.h"
#include "mirrord/source_store.h"
#include "mirrord/tests/test_records.h"
#include "tests/unit/test_util.h"
#include "tests/unit/tree_snapshot.h"

namespace mirror::d::test {

namespace c = mirror::common;
using mirror::test::SnapshotTree;
using mirror::test::TempDir;

inline StoreOptions SmallOptions() {
  StoreOptions o;
  o.memory_half_bytes = 256 * 1024;
  o.limits.max_record_bytes = 128 * 1024;
  o.flush_delay = std::chrono::milliseconds(1);
  o.segment_bytes = 64 * 1024;
  return o;
}

inline std::unique_ptr<SourceStore> OpenStore(const std::string& dir, const StoreOptions& o,
                                              std::string* note = nullptr) {
  auto store = SourceStore::Open(dir, "s1", o, note);
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return std::move(store).value();
}

// `wants_durable`: the session's HELLO flag (false: flushed after lazy_flush_delay).
inline uint64_t Start(SourceStore& store, uint64_t epoch = 1, const std::string& volume = "vol",
                      bool wants_durable = true) {
  Refusal refusal;
  auto info = store.StartSession(volume, epoch, nullptr, &refusal, wants_durable);
  REQUIRE_MESSAGE(info.ok(), info.status().ToString());
  return info->token;
}

// Waits (at most 10 s) until `seq` is durable; returns the durable seq then.
inline uint64_t WaitDurable(const SourceStore& store, uint64_t seq) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store.Stats().durable_seq < seq && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return store.Stats().durable_seq;
}

inline std::string Concat(const std::vector<std::string>& recs) {
  std::string out;
  for (const auto& r : recs) out += r;
  return out;
}

// Feeds records one batch at a time, waiting for room when memory is full.
inline void ReceiveAll(SourceStore& store, uint64_t token, const std::vector<std::string>& recs) {
  for (const auto& r : recs) {
    for (int tries = 0;; ++tries) {
      REQUIRE(tries < 1000);
      ReceiveResult res = store.Receive(token, r, 1);
      REQUIRE_MESSAGE(!res.error, (res.error ? res.error->message : ""));
      if (res.accepted == 1) break;
      REQUIRE(res.need_room);
      std::promise<void> room;
      store.WhenRoom([&] { room.set_value(); });
      REQUIRE(room.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    }
  }
}

// The tree that applying `recs` in order to an empty directory gives.
inline mirror::test::TreeSnapshot DirectApply(const std::vector<std::string>& recs) {
  TempDir dir;
  auto image = c::ImageTree::Open(dir.path());
  REQUIRE(image.ok());
  for (const auto& bytes : recs) {
    auto rec = c::DecodeRecord(bytes);
    REQUIRE(rec.ok());
    c::Status s = image->Apply(*rec, c::ApplyOptions{});
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  return SnapshotTree(dir.path());
}

inline Refusal ReceiveRefused(SourceStore& store, uint64_t token, const std::string& rec) {
  ReceiveResult res = store.Receive(token, rec, 1);
  REQUIRE(res.error.has_value());
  CHECK(res.accepted == 0);
  return *res.error;
}

inline std::string WithSeq(std::string rec, uint64_t seq) {
  c::StoreLE<uint64_t>(rec.data() + 16, seq);
  uint32_t crc = c::crc32c::Mask(c::crc32c::Value(rec.data() + 8, rec.size() - 8));
  c::StoreLE<uint32_t>(rec.data() + 4, crc);
  return rec;
}

}  // namespace mirror::d::test
