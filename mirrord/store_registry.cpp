#include "mirrord/store_registry.h"

#include <sys/stat.h>

#include <filesystem>

#include "mirrord/log.h"

namespace mirror::d {

using common::Result;
using common::Status;

Status StoreRegistry::OpenAll() {
  std::lock_guard<std::mutex> lock(mu_);
  if (::mkdir(config_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IOError("mkdir " + config_.state_dir, errno);
  }
  for (const SourceConfig& s : config_.sources) MIRROR_RETURN_IF_ERROR(OpenLocked(s.id).status());
  if (!config_.any_source_secret) return Status::Ok();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(config_.state_dir, ec)) {
    const std::string id = entry.path().filename().string();
    if (ValidSourceId(id) && entry.is_directory() &&
        std::filesystem::exists(entry.path() / kStateFileName)) {
      MIRROR_RETURN_IF_ERROR(OpenLocked(id).status());
    }
  }
  if (ec) return Status::IOError("list " + config_.state_dir, ec.value());
  return Status::Ok();
}

Result<SourceStore*> StoreRegistry::OpenLocked(const std::string& source_id) {
  auto it = entries_.find(source_id);
  if (it != entries_.end()) return it->second.store.get();
  if (closed_.count(source_id) != 0) {
    return Status::Unavailable("the store of source '" + source_id +
                               "' is being adopted; retry later");
  }
  std::string note;
  MIRROR_ASSIGN_OR_RETURN(std::unique_ptr<SourceStore> store,
                          SourceStore::Open(config_.state_dir + "/" + source_id, source_id,
                                            config_.StoreOptionsFor(source_id), &note));
  LogSource(LogLevel::kInfo, source_id, "opened: " + note);
  SourceStore* raw = store.get();
  entries_[source_id].store = std::move(store);
  return raw;
}

Result<common::SourceRecord> StoreRegistry::Lookup(std::string_view source_id) {
  common::SourceRecord rec;
  if (!ValidSourceId(source_id)) return Status::NotFound("not a valid source id");
  if (const SourceConfig* s = config_.Find(source_id)) {
    rec.secret = s->secret;
  } else if (config_.any_source_secret) {
    rec.secret = *config_.any_source_secret;
  } else {
    return Status::NotFound("unknown source");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(source_id);
  if (it != entries_.end()) {
    StoreStats st = it->second.store->Stats();
    rec.epoch = st.epoch;
    rec.durable_seq = st.durable_seq;
    rec.applied_seq = st.applied_seq;
    rec.fenced_message = it->second.store->FencedMessage();
  }
  return rec;
}

Result<SourceStore*> StoreRegistry::Existing(const std::string& source_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.find(source_id) == entries_.end() &&
      (!ValidSourceId(source_id) ||
       !std::filesystem::exists(config_.state_dir + "/" + source_id + "/" + kStateFileName))) {
    return Status::NotFound("no source '" + source_id + "' in " + config_.state_dir);
  }
  return OpenLocked(source_id);
}

Result<SourceStore*> StoreRegistry::GetOrOpen(const std::string& source_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return OpenLocked(source_id);
}

void StoreRegistry::SetConnected(const std::string& source_id, uint64_t token, std::string peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(source_id);
  if (it == entries_.end()) return;
  it->second.connected = true;
  it->second.token = token;
  it->second.peer = std::move(peer);
}

void StoreRegistry::SetDisconnected(const std::string& source_id, uint64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(source_id);
  if (it == entries_.end() || it->second.token != token) return;
  it->second.connected = false;
}

nlohmann::json StoreRegistry::StatusJson() const {
  nlohmann::json sources = nlohmann::json::array();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, e] : entries_) {
    StoreStats st = e.store->Stats();
    nlohmann::json j;
    j["id"] = id;
    j["connected"] = e.connected;
    j["peer"] = e.connected ? e.peer : "";
    j["volume_id"] = st.volume_id;
    j["epoch"] = st.epoch;
    j["received_seq"] = st.received_seq;
    j["durable_seq"] = st.durable_seq;
    j["applied_seq"] = st.applied_seq;
    j["lag_records"] = st.received_seq - st.applied_seq;
    j["lag_seconds"] = st.lag_seconds;
    j["received_bytes"] = st.received_bytes;
    j["memory_used_bytes"] = st.memory_used_bytes;
    j["memory_capacity_bytes"] = st.memory_capacity_bytes;
    j["log_bytes"] = st.log_bytes;
    j["log_segments"] = st.log_segments;
    j["image"] = st.dir + "/image";
    j["state"] = st.promoted        ? "promoted"
                 : st.broken        ? "broken"
                 : st.resync_active ? "resync"
                 : e.connected      ? "connected"
                                    : "disconnected";
    j["role"] = st.promoted ? "primary" : "destination";
    j["promoted"] = st.promoted;
    j["promoted_seq"] = st.promoted_seq;
    j["resync"] = st.resync_active;
    j["resync_until_seq"] = st.resync_until;
    // A promoted image is a primary served by a mirrorfs over it: that mount's status
    // tells its health, not this store's.
    j["healthy"] = st.promoted || (!st.broken && !st.resync_active && e.connected);
    j["unhealthy_reason"] = st.promoted        ? ""
                            : st.broken        ? "store failed: see last_error"
                            : st.resync_active ? "resync in progress: the image is not consistent"
                            : e.connected      ? ""
                                               : "source not connected";
    j["last_error"] = st.last_error;
    sources.push_back(std::move(j));
  }
  return nlohmann::json{{"sources", std::move(sources)}};
}

Status StoreRegistry::WithStoreClosed(const std::string& source_id,
                                      const std::function<void()>& fn) {
  SourceStore* store = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_.insert(source_id).second) {
      return Status::Unavailable("another adopt of source '" + source_id + "' is running");
    }
    auto it = entries_.find(source_id);
    if (it != entries_.end()) {
      store = it->second.store.get();
      retired_.push_back(std::move(it->second.store));
      entries_.erase(it);
    }
  }
  if (store != nullptr) {
    store->Retire();
    LogSource(LogLevel::kNotice, source_id, "store closed for an adopt");
  }
  fn();
  std::lock_guard<std::mutex> lock(mu_);
  closed_.erase(source_id);
  if (!std::filesystem::exists(config_.state_dir + "/" + source_id + "/" + kStateFileName)) {
    return Status::Ok();
  }
  Result<SourceStore*> reopened = OpenLocked(source_id);
  if (!reopened.ok()) {
    LogSource(LogLevel::kError, source_id,
              "reopening after an adopt: " + reopened.status().ToString());
    return reopened.status();
  }
  return Status::Ok();
}

void StoreRegistry::CloseAll() {
  std::map<std::string, Entry, std::less<>> entries;
  std::vector<std::unique_ptr<SourceStore>> retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries.swap(entries_);
    retired.swap(retired_);
  }
  entries.clear();  // each store flushes and stops its flusher
  retired.clear();
}

}  // namespace mirror::d
