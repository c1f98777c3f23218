// The ReplicationClient's side of a resync (resync.h runs it): starting it when a
// session finds the stream cannot continue, and the ResyncLink requests to mirrord.
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mirrorfs/log.h"
#include "mirrorfs/replication_client.h"
#include "mirrorfs/replication_session.h"
#include "mirrorfs/resync_marker.h"
#include "mirrorfs/resync_progress.h"

namespace mirror::fs {

namespace asio = boost::asio;

namespace {

// How long one resync request may wait for mirrord (a manifest of a large image, block
// sums of a large file, a restart that drops a big backlog).
constexpr std::chrono::minutes kResyncRequestTimeout{30};

}  // namespace

void ReplicationClient::EnableResync(std::string backing, Resyncer::Freeze freeze) {
  backing_ = std::move(backing);
  freeze_ = std::move(freeze);
}

common::Status ReplicationClient::MarkResyncNeeded(const std::string& marker,
                                                   const std::string& why) {
  std::string already = ReadResyncMarker(marker);
  return already.empty() ? WriteResyncMarker(marker, why) : common::Status::Ok();
}

bool ReplicationClient::ResyncPending(std::string* why) const {
  *why = ReadResyncMarker(identity_.out_of_sync_marker);
  return !why->empty();
}

void ReplicationClient::OnResyncNeeded(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (resync_active_ || stopping_) return;
    resync_active_ = true;
    stream_superseded_ = true;
    resync_reason_ = why;
    resync_progress_ = ResyncProgress{};
  }
  if (std::string marked; !ResyncPending(&marked)) {
    if (common::Status s = WriteResyncMarker(identity_.out_of_sync_marker, why); !s.ok()) {
      Log(LogLevel::kWarning, "mirror: " + s.ToString());
    }
  }
  if (resync_thread_.joinable()) resync_thread_.join();  // the last one has ended
  resync_thread_ = std::thread([this, why] { RunResync(why); });
}

void ReplicationClient::RunResync(std::string why) {
  Log(LogLevel::kNotice,
      "mirror: resync of " + backing_ + " to " + config_.target + " starts: " + why);
  Resyncer resyncer(journal_, backing_, freeze_, *this);
  ResyncReporter reporter;
  resyncer.OnProgress([this, &reporter](const ResyncProgress& p) {
    {
      std::lock_guard lock(mu_);
      resync_progress_ = p;
    }
    reporter.Report(p);
  });
  common::Status s = resyncer.Run();
  uint64_t through = 0;
  if (s.ok()) {
    // The image is consistent once mirrord applied the whole resync: ask for it now.
    through = journal_.released_seq();
    auto applied = Sync(through, false, kResyncRequestTimeout);
    if (!applied.ok()) s = applied.status().Annotate("applying the resync");
  }
  if (s.ok() && unlink(identity_.out_of_sync_marker.c_str()) != 0 && errno != ENOENT) {
    s = common::Status::IOError("remove " + identity_.out_of_sync_marker, errno);
  }
  const ResyncProgress p = resyncer.progress();
  {
    std::lock_guard lock(mu_);
    resync_active_ = false;
    resync_progress_ = p;
    if (s.ok()) resync_reason_.clear();
  }
  if (s.ok()) {
    reporter.Done(p);
    return;
  }
  Log(LogLevel::kError, "mirror: resync failed: " + s.ToString() + " (retried after a reconnect)");
  asio::post(loop_->io, [this, s] {
    if (loop_->session && !loop_->session->closed()) {
      loop_->session->Close(LinkState::kDisconnected, "resync failed: " + s.message());
    }
  });
}

common::Status ReplicationClient::RestartStream(uint64_t next_seq) {
  {
    std::lock_guard lock(mu_);
    if (link_ != LinkState::kConnected) return common::Status::Unavailable("link to mirrord down");
    restart_pending_ = true;
  }
  asio::post(loop_->io, [this, next_seq] {
    if (loop_->session && !loop_->session->closed()) loop_->session->Restart(next_seq);
  });
  std::unique_lock lock(mu_);
  ++waiters_;
  const bool done = acked_.wait_for(lock, kResyncRequestTimeout, [&] {
    return !restart_pending_ || stopping_ || link_ != LinkState::kConnected;
  });
  --waiters_;
  if (stopping_) return common::Status::Aborted("the mount is stopping");
  if (!done || restart_pending_) {
    return common::Status::Unavailable("mirrord did not acknowledge the resync's restart");
  }
  return common::Status::Ok();
}

void ReplicationClient::OnRestartAcked(uint64_t seq) {
  received_seq_.store(seq, std::memory_order_release);
  durable_seq_.store(seq, std::memory_order_release);
  applied_seq_.store(seq, std::memory_order_release);
  sent_seq_.store(seq, std::memory_order_release);
  std::lock_guard lock(mu_);
  restart_pending_ = false;
  stream_superseded_ = false;
  have_received_offset_ = false;
  acked_.notify_all();
  ack_waiters_.WakeAll();  // their seqs may be at or below the restart's
}

common::Result<ReplicationClient::Request> ReplicationClient::Ask(
    const std::function<std::string(uint64_t token)>& frame, uint64_t gate,
    std::chrono::milliseconds timeout) {
  uint64_t token;
  {
    std::lock_guard lock(mu_);
    if (link_ != LinkState::kConnected) return common::Status::Unavailable("link to mirrord down");
    token = next_token_++;
    requests_[token] = Request{};
  }
  std::string bytes = frame(token);
  asio::post(loop_->io, [this, bytes = std::move(bytes), gate]() mutable {
    if (loop_->session && !loop_->session->closed())
      loop_->session->SendGated(std::move(bytes), gate);
  });
  Notify();
  std::unique_lock lock(mu_);
  ++waiters_;
  acked_.wait_for(lock, timeout, [&] { return requests_[token].done || stopping_; });
  --waiters_;
  Request r = std::move(requests_[token]);
  requests_.erase(token);
  if (!r.done) return common::Status::DeadlineExceeded("mirrord did not answer in time");
  if (!r.status.ok()) return r.status;
  return r;
}

void ReplicationClient::FailRequestsLocked(const common::Status& why) {
  for (auto& [token, r] : requests_) {
    if (r.done) continue;
    r.done = true;
    r.status = why;
  }
}

void ReplicationClient::OnManifestChunk(uint64_t token, bool last, const std::string& error,
                                        std::string_view entries) {
  std::lock_guard lock(mu_);
  auto it = requests_.find(token);
  if (it == requests_.end() || it->second.done) return;
  it->second.bytes.append(entries);
  if (!error.empty())
    it->second.status = common::Status::IOError("mirrord: manifest: " + error, EIO);
  if (last || !error.empty()) {
    it->second.done = true;
    acked_.notify_all();
  }
}

void ReplicationClient::OnSums(uint64_t token, const std::string& error, uint64_t size,
                               std::string_view sums) {
  std::lock_guard lock(mu_);
  auto it = requests_.find(token);
  if (it == requests_.end() || it->second.done) return;
  Request& r = it->second;
  r.done = true;
  r.size = size;
  r.bytes.assign(sums);
  if (error == "not found") {
    r.found = false;
  } else if (!error.empty()) {
    r.status = common::Status::IOError("mirrord: block sums: " + error, EIO);
  }
  acked_.notify_all();
}

common::Result<common::Manifest> ReplicationClient::FetchManifest(bool content_hashes) {
  auto r = Ask(
      [content_hashes](uint64_t token) {
        return EncodeOrEmpty(common::ManifestRequestMsg{token, content_hashes ? 1u : 0u});
      },
      journal_.released_seq(), kResyncRequestTimeout);
  if (!r.ok()) return r.status();
  return common::DecodeManifestEntries(r->bytes);
}

common::Result<ResyncLink::Sums> ReplicationClient::FetchSums(const std::string& path,
                                                              uint32_t block_size) {
  auto r = Ask(
      [&path, block_size](uint64_t token) {
        return EncodeOrEmpty(common::SumsRequestMsg{token, path, block_size});
      },
      journal_.released_seq(), kResyncRequestTimeout);
  if (!r.ok()) return r.status();
  Sums out;
  out.found = r->found;
  out.size = r->size;
  if (r->bytes.size() % sizeof(common::BlockSum) != 0) {
    return common::Status::Corruption("mirrord: block sums of " + path + ": " +
                                      std::to_string(r->bytes.size()) + " bytes");
  }
  out.sums.resize(r->bytes.size() / sizeof(common::BlockSum));
  std::memcpy(out.sums.data(), r->bytes.data(), r->bytes.size());
  return out;
}

common::Status ReplicationClient::FinishResync(uint64_t through_seq) {
  std::string frame = EncodeOrEmpty(common::ResyncDoneMsg{through_seq});
  asio::post(loop_->io, [this, frame = std::move(frame), through_seq]() mutable {
    if (loop_->session && !loop_->session->closed()) {
      loop_->session->SendGated(std::move(frame), through_seq);
    }
  });
  Notify();
  return common::Status::Ok();
}

}  // namespace mirror::fs
