#include "mirrorfs/replication_client.h"

#include <cerrno>

#include "common/clock.h"
#include "mirrorfs/log.h"
#include "mirrorfs/replication_session.h"
#include "mirrorfs/resync_marker.h"

namespace mirror::fs {

namespace asio = boost::asio;

namespace {

// A writer in async mode this close behind mirrord does not even look at the lag in bytes.
constexpr uint64_t kAsyncFreeRecords = 64;
// Async writers over max_lag re-check this often (the lag in bytes has no notification).
constexpr std::chrono::milliseconds kAsyncRecheck{20};

}  // namespace

const char* LinkStateName(LinkState state) {
  switch (state) {
    case LinkState::kConnecting:
      return "connecting";
    case LinkState::kConnected:
      return "connected";
    case LinkState::kDisconnected:
      return "disconnected";
    case LinkState::kRefused:
      return "refused";

    case LinkState::kFenced:
      return "fenced";
    case LinkState::kStopped:
      return "stopped";
  }
  return "unknown";
}

ReplicationClient::ReplicationClient(common::Journal& journal, const MirrorConfig& config,
                                     ReplicationIdentity identity)
    : journal_(journal),
      config_(config),
      identity_(std::move(identity)),
      loop_(std::make_unique<Loop>()) {
  std::lock_guard lock(mu_);
  SetLinkLocked(link_);
}

ReplicationClient::~ReplicationClient() { Stop(); }

void ReplicationClient::Start() {
  if (thread_.joinable()) return;
  auto fence = common::ReadFenceFile(identity_.fence_file);
  if (!fence.ok() || fence->has_value()) {
    const std::string what = fence.ok() ? (*fence)->message : "unreadable " + identity_.fence_file;
    Log(LogLevel::kError, "mirror: fenced earlier (" + what + "; see " + identity_.fence_file +
                              "): nothing is shipped to " + config_.target +
                              "; the journal keeps every change (failback: "
                              "docs/operations.md)");
    {
      std::lock_guard lock(mu_);
      SetLinkLocked(LinkState::kFenced);
      last_error_ = what;
      if (fence.ok()) fence_ = **fence;
    }
    // The loop runs (Notify and Sync post to it) but never connects.
    thread_ = std::thread([this] { Run(); });
    return;
  }
  if (std::string why = ReadResyncMarker(identity_.out_of_sync_marker); !why.empty()) {
    Log(LogLevel::kNotice,
        "mirror: " + why + "; a resync runs once connected to " + config_.target);
    std::lock_guard lock(mu_);
    resync_reason_ = why;
    stream_superseded_ = true;
  }
  asio::post(loop_->io, [this] { Connect(); });
  thread_ = std::thread([this] { Run(); });
}

void ReplicationClient::Run() { loop_->io.run(); }

void ReplicationClient::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    SetLinkLocked(LinkState::kStopped);
  }
  acked_.notify_all();
  ack_waiters_.WakeAll();
  if (!thread_.joinable()) return;
  asio::post(loop_->io, [this] {
    loop_->reconnect.cancel();
    if (loop_->session) loop_->session->Close(LinkState::kStopped, "the mount is stopping");
    loop_->io.stop();
  });
  thread_.join();
  {
    std::lock_guard lock(mu_);
    FailRequestsLocked(common::Status::Aborted("the mount is stopping"));
  }
  acked_.notify_all();
  if (resync_thread_.joinable()) resync_thread_.join();
}

// ---- The loop thread

void ReplicationClient::Connect() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
  loop_->session = std::make_shared<Session>(*this, loop_->io);
  loop_->session->Start();
}

void ReplicationClient::Notify() {
  if (wake_posted_.exchange(true, std::memory_order_acq_rel)) return;
  if (config_.mode != AckMode::kAsync) {
    asio::post(loop_->io, [this] { ShipOnLoop(); });
    return;
  }
  // Nobody waits for these records: ship what a short while gathers in one frame rather
  // than wake both daemons for every write. (A busy shipper does not wait: it refills
  // as soon as its last write completed.)
  asio::post(loop_->io, [this] {
    loop_->ship_later.expires_after(kAsyncShipDelay);
    loop_->ship_later.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) ShipOnLoop();
    });
  });
}

void ReplicationClient::ShipOnLoop() {
  wake_posted_.store(false, std::memory_order_release);
  if (loop_->session && !loop_->session->closed()) loop_->session->Ship();
}

void ReplicationClient::OnConnected(uint64_t received, uint64_t durable, uint64_t applied) {
  received_seq_.store(received, std::memory_order_release);
  durable_seq_.store(durable, std::memory_order_release);
  applied_seq_.store(applied, std::memory_order_release);
  sent_seq_.store(received, std::memory_order_release);
  loop_->backoff = kMinBackoff;
  {
    std::lock_guard lock(mu_);
    SetLinkLocked(LinkState::kConnected);
    ++connects_;
    have_received_offset_ = false;
  }
  acked_.notify_all();
  ack_waiters_.WakeAll();
  Log(LogLevel::kNotice, "mirror: connected to mirrord " + config_.target + " (resume at seq " +
                             std::to_string(received + 1) + ", durable " + std::to_string(durable) +
                             ", applied " + std::to_string(applied) + ")");
  if (loop_sync_wanted_ > applied) loop_->session->WantSync(loop_sync_wanted_);
}

void ReplicationClient::OnAck(uint64_t received, uint64_t durable) {
  received_seq_.store(received, std::memory_order_release);
  durable_seq_.store(durable, std::memory_order_release);
  ack_waiters_.Advance(config_.mode == AckMode::kDurable ? durable : received);
  std::lock_guard lock(mu_);
  if (waiters_ > 0) acked_.notify_all();
}

void ReplicationClient::OnApplied(uint64_t applied) {
  applied_seq_.store(applied, std::memory_order_release);
  std::lock_guard lock(mu_);
  if (waiters_ > 0) acked_.notify_all();
}

void ReplicationClient::OnSent(uint64_t seq) { sent_seq_.store(seq, std::memory_order_release); }

void ReplicationClient::OnReceivedEndOffset(uint64_t end_offset) {
  std::lock_guard lock(mu_);
  have_received_offset_ = true;
  received_end_offset_ = end_offset;
}

void ReplicationClient::OnSessionEnded(LinkState next, const std::string& why, bool was_streaming) {
  bool log_it;
  {
    std::lock_guard lock(mu_);
    FailRequestsLocked(common::Status::Unavailable("link to mirrord lost: " + why));
    restart_pending_ = false;
    if (stopping_) return;
    log_it = was_streaming || why != last_error_ || link_ != next;
    SetLinkLocked(next);
    last_error_ = why;
  }
  acked_.notify_all();
  ack_waiters_.WakeAll();
  if (next == LinkState::kFenced) RecordFence(why);
  if (next != LinkState::kDisconnected && next != LinkState::kRefused) {
    Log(LogLevel::kError, std::string("mirror: ") + LinkStateName(next) + ": " + why +
                              "; nothing more is shipped to " + config_.target +
                              " (writers go on locally)");
    return;
  }
  // A refusal would come again at once: retry slowly. A link that worked: retry soon.
  if (next == LinkState::kRefused) {
    loop_->backoff = kMaxBackoff;
  } else if (was_streaming) {
    loop_->backoff = kMinBackoff;
  }
  if (log_it) {
    Log(next == LinkState::kRefused ? LogLevel::kError : LogLevel::kWarning,
        "mirror: link to mirrord " + config_.target + " down: " + why + "; retrying (writers " +
            (config_.degrade || config_.mode == AckMode::kAsync ? "go on" : "wait") +
            ", on_disconnect=" + (config_.degrade ? "degrade" : "block") + ")");
  }
  loop_->reconnect.expires_after(loop_->backoff);
  loop_->backoff = std::min(loop_->backoff * 2, std::chrono::milliseconds(kMaxBackoff));
  loop_->reconnect.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Connect();
  });
}

void ReplicationClient::RecordFence(const std::string& why) {
  common::FenceInfo info = common::ParseFenceMessage(why);
  if (common::Status s = common::WriteFenceFile(identity_.fence_file, info); !s.ok()) {
    Log(LogLevel::kError,
        "mirror: " + s.ToString() + " (a remount will connect and be fenced again)");
  }
  std::lock_guard lock(mu_);
  fence_ = std::move(info);
}

bool ReplicationClient::RestartPending() const {
  std::lock_guard lock(mu_);
  return stream_superseded_;
}

bool ReplicationClient::MayDropUnshipped() const {
  std::lock_guard lock(mu_);
  return config_.degrade && link_ != LinkState::kConnected;
}

void ReplicationClient::MarkOutOfSync(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || resync_reason_ == why) return;
  }
  if (common::Status s = WriteResyncMarker(identity_.out_of_sync_marker, why); !s.ok()) {
    Log(LogLevel::kError, "mirror: " + s.ToString() +
                              " (a remount will find mirrord's resume seq below the journal "
                              "and resync anyway)");
  }
  // The link is down (that is why records were dropped): the next connection resyncs.
  Log(LogLevel::kWarning,
      "mirror: " + why + "; the next connection to " + config_.target + " starts a resync");
  std::lock_guard lock(mu_);
  resync_reason_ = why;
}

// ---- Writers and consistency points

void ReplicationClient::SetLinkLocked(LinkState link) {
  link_ = link;
  writers_go_on_.store(MayGoOnLocked(), std::memory_order_release);
}

bool ReplicationClient::MayGoOnLocked() const {
  switch (link_) {
    case LinkState::kConnected:
      return false;
    case LinkState::kConnecting:
    case LinkState::kDisconnected:
    case LinkState::kRefused:
      return config_.degrade;
    default:  // out of sync, fenced, stopped: nothing would ever acknowledge
      return true;
  }
}

void ReplicationClient::AwaitWriter(uint64_t seq) {
  if (config_.mode == AckMode::kAsync) {
    if (seq <= received_seq_.load(std::memory_order_acquire) + kAsyncFreeRecords) return;
    while (LagBytes() > config_.max_lag) {
      std::unique_lock lock(mu_);
      if (MayGoOnLocked()) return;
      ++waiters_;
      acked_.wait_for(lock, kAsyncRecheck);
      --waiters_;
    }
    return;
  }
  const std::atomic<uint64_t>& acked =
      config_.mode == AckMode::kDurable ? durable_seq_ : received_seq_;
  ack_waiters_.Wait(seq, [&] {
    return acked.load(std::memory_order_acquire) >= seq ||
           writers_go_on_.load(std::memory_order_acquire);
  });
}

common::Result<uint64_t> ReplicationClient::Sync(uint64_t seq, bool wait_for_link,
                                                 std::chrono::milliseconds timeout) {
  if (applied_seq_.load(std::memory_order_acquire) >= seq) return applied_seq_.load();
  asio::post(loop_->io, [this, seq] {
    loop_sync_wanted_ = std::max(loop_sync_wanted_, seq);
    if (loop_->session && !loop_->session->closed()) loop_->session->WantSync(seq);
  });
  Notify();
  std::unique_lock lock(mu_);
  auto give_up = [&] {
    return stopping_ || link_ == LinkState::kFenced ||
           (!wait_for_link && link_ != LinkState::kConnected);
  };
  ++waiters_;
  const bool done = acked_.wait_for(lock, timeout, [&] {
    return applied_seq_.load(std::memory_order_acquire) >= seq || give_up();
  });
  --waiters_;
  const uint64_t applied = applied_seq_.load(std::memory_order_acquire);
  if (applied >= seq) return applied;
  const std::string state = LinkStateName(link_);
  const std::string why = last_error_.empty() ? "" : " (" + last_error_ + ")";
  if (!done) {
    return common::Status::DeadlineExceeded("mirrord has not applied seq " + std::to_string(seq) +
                                            " after " + std::to_string(timeout.count()) +
                                            " ms; link " + state + why);
  }
  if (link_ == LinkState::kFenced) return common::Status::Aborted("mirror is " + state + why);
  return common::Status::Unavailable("mirror link " + state + why);
}

uint64_t ReplicationClient::LagBytes() const {
  uint64_t offset;
  {
    std::lock_guard lock(mu_);
    if (!have_received_offset_) {
      return received_seq_.load() >= journal_.released_seq() ? 0 : journal_.stats().used_bytes;
    }
    offset = received_end_offset_;
  }
  return journal_.BytesAfter(offset);
}

// The age of the oldest record mirrord has not received: read from the journal (cheap
// enough for status requests, not for every write).
double ReplicationClient::LagSeconds(uint64_t received) const {
  if (received >= journal_.released_seq()) return 0;
  common::Result<common::JournalCursor> cursor = journal_.ReadFrom(received + 1);
  if (!cursor.ok()) return 0;
  common::Result<bool> next = cursor->Next();
  if (!next.ok() || !*next) return 0;
  const int64_t age_ns = common::RealtimeNs() - cursor->record().meta.timestamp_ns;
  return age_ns > 0 ? static_cast<double>(age_ns) / 1e9 : 0;
}

ReplicationClient::Stats ReplicationClient::stats() const {
  Stats s;
  s.received_seq = received_seq_.load(std::memory_order_acquire);
  s.durable_seq = durable_seq_.load(std::memory_order_acquire);
  s.applied_seq = applied_seq_.load(std::memory_order_acquire);
  s.sent_seq = sent_seq_.load(std::memory_order_acquire);
  const uint64_t released = journal_.released_seq();
  s.lag_records = released > s.received_seq ? released - s.received_seq : 0;
  s.lag_bytes = s.lag_records == 0 ? 0 : LagBytes();
  s.lag_seconds = LagSeconds(s.received_seq);
  s.peer = config_.target;
  std::lock_guard lock(mu_);
  s.link = link_;
  s.connects = connects_;
  s.waiting_writers = waiters_ + ack_waiters_.size();
  s.last_error = last_error_;
  s.resync_active = resync_active_;
  s.resync_reason = resync_reason_;
  s.resync = resync_progress_;
  s.fence = fence_;
  return s;
}

}  // namespace mirror::fs
