// StoreRegistry::WithStoreClosed, what `mirrord adopt` through a running mirrord uses:
// the store's lock is free while the adopt runs, no store of that id opens meanwhile,
// the old store refuses its source as a passing trouble, and a new store opens after.
#include "mirrord/store_registry.h"

#include <doctest/doctest.h>

#include "common/frame.h"
#include "mirrord/store_lock.h"
#include "mirrord/tests/store_test_util.h"

using namespace mirror::d;
using namespace mirror::d::test;

namespace {

MirrordConfig SmallConfig(const std::string& state_dir) {
  MirrordConfig c;
  c.state_dir = state_dir;
  c.memory_bytes = 512 * 1024;
  c.max_record_bytes = 128 * 1024;
  c.segment_bytes = 64 * 1024;
  c.flush_delay = std::chrono::milliseconds(1);
  c.sources.push_back(SourceConfig{"s1", "secret", false, {}});
  return c;
}

}  // namespace

TEST_CASE("WithStoreClosedFreesTheLockKeepsTheIdClosedAndReopensAfter") {
  TempDir dir;
  const MirrordConfig config = SmallConfig(dir.path());
  StoreRegistry registry(config);
  REQUIRE(registry.OpenAll().ok());
  auto first = registry.GetOrOpen("s1");
  REQUIRE(first.ok());
  SourceStore* old_store = *first;
  Refusal refusal;
  REQUIRE(old_store->StartSession("vol", 1, nullptr, &refusal).ok());

  bool ran = false;
  mirror::common::Status reopened = registry.WithStoreClosed("s1", [&] {
    ran = true;
    // The lock is free: an adopt in this process (or another) may take it.
    auto lock = LockStoreDir(dir.path() + "/s1");
    CHECK_MESSAGE(lock.ok(), lock.status().ToString());
    // No store of that id opens meanwhile; the old one refuses, as a passing trouble.
    auto again = registry.GetOrOpen("s1");
    CHECK(again.status().code() == mirror::common::Code::kUnavailable);
    Refusal r;
    CHECK_FALSE(old_store->StartSession("vol", 1, nullptr, &r).ok());
    CHECK(r.code == mirror::common::WireError::kShuttingDown);
  });
  CHECK(ran);
  CHECK(reopened.ok());
  auto after = registry.GetOrOpen("s1");
  REQUIRE(after.ok());
  CHECK(*after != old_store);
  CHECK((*after)->StartSession("vol", 1, nullptr, &refusal).ok());
  // The new store holds the lock again.
  CHECK_FALSE(LockStoreDir(dir.path() + "/s1").ok());
  registry.CloseAll();
}
