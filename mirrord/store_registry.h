// The stores of all sources of one mirrord, by source id, with what status shows about
// each (connected, peer). Owns the stores; a store, once opened, lives until CloseAll().
//
// Which ids exist: with a `sources` table, exactly those; in quick-start mode (one secret
// for any id), every directory of STATE_DIR holding a state file, plus any id that
// authenticates. A store is created only after its source proved the secret (GetOrOpen is
// called after the handshake), so unauthenticated peers cannot make directories.
//
// Thread-safety: all methods are thread-safe (mu_). Returned SourceStore pointers stay
// valid until CloseAll().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/handshake.h"
#include "common/status.h"
#include "mirrord/config.h"
#include "mirrord/source_store.h"

namespace mirror::d {

class StoreRegistry {
 public:
  explicit StoreRegistry(const MirrordConfig& config) : config_(config) {}

  // Opens the stores that exist or are configured (recovery runs here), logging each.
  common::Status OpenAll();
  // For the handshake, on HELLO: the secret and the stored epoch and seqs. NotFound for
  // an id that may not connect.
  common::Result<common::SourceRecord> Lookup(std::string_view source_id);
  // The store of an authenticated source, opened (and created) if needed.
  common::Result<SourceStore*> GetOrOpen(const std::string& source_id);

  // The store of a source that exists (open, or with a state file in STATE_DIR); NotFound
  // otherwise. Never creates one (for promote).
  common::Result<SourceStore*> Existing(const std::string& source_id);

  // Connection state for status. A connection marks itself with its session token;
  // only the current one can mark the source disconnected.
  void SetConnected(const std::string& source_id, uint64_t token, std::string peer);
  void SetDisconnected(const std::string& source_id, uint64_t token);

  // {"sources": [...]} as `mirrord status --json` prints it.
  nlohmann::json StatusJson() const;

  // Runs `fn` with the store of `source_id` closed (retired: its lock free) and no store
  // of that id opened meanwhile (connections of the source are refused, and retry); then
  // opens the store again if its directory holds a state file. For `mirrord adopt`
  // through the control socket. An error: reopening failed (logged too).
  common::Status WithStoreClosed(const std::string& source_id, const std::function<void()>& fn);

  // Flushes and closes every store (their flusher threads stop).
  void CloseAll();

 private:
  struct Entry {
    std::unique_ptr<SourceStore> store;
    bool connected = false;
    uint64_t token = 0;
    std::string peer;
  };
  common::Result<SourceStore*> OpenLocked(const std::string& source_id);  // mu_ held

  const MirrordConfig& config_;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
  std::set<std::string, std::less<>> closed_;          // ids WithStoreClosed runs for; mu_
  // Retired stores, kept until CloseAll: connections and jobs may still hold pointers.
  std::vector<std::unique_ptr<SourceStore>> retired_;  // guarded by mu_
};

}  // namespace mirror::d
