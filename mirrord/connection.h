// One source connection: the handshake, then RECORDS/SYNC/PING in, ACK/SYNC_DONE/PONG
// out (docs/formats.md, "Wire frames and handshake").
//
// Asio model (as Beast's advanced server): everything runs on the socket's strand; the
// connection stays alive through the shared_ptr its handlers capture; exactly one
// async_write is outstanding; every read has a size limit (the frame header is checked
// before the payload is allocated) and a timeout (handshake_timeout, then idle_timeout).
//
// Backpressure: a RECORDS frame is read only after the previous one was taken whole by
// the store. When the store's memory is full (its flush is behind), the connection stops
// reading until the store calls back, so its memory stays bounded (one frame).
//
// Acknowledgements: after each RECORDS frame, and after each flush of the store, an ACK
// (received_seq, durable_seq) is sent; ACKs are coalesced (one pending at most).
//
// Jobs: SYNC, RESYNC, RESYNC_DONE, MANIFEST_REQUEST and SUMS_REQUEST run on the blocking
// pool (apply, fsync and tree walks may take long), one at a time, in the order their
// frames came; a SYNC queued behind another is merged into it. Reading goes on meanwhile,
// except after a RESYNC: nothing more is read (and no ACK is sent) until it is done and
// answered with ACK(next_seq - 1, next_seq - 1). A manifest is sent in frames of at most
// kManifestChunkBytes of entries, each encoded when the previous frame was written, so
// at most one of them is in memory besides the manifest itself.
//
// Refusals: every refusal sends ERROR with its code, logs one line naming the source,
// and closes the connection after the ERROR is written.
//
// Thread-safety: public methods may be called from any thread (they post to the strand).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/handshake.h"
#include "common/manifest.h"
#include "mirrord/asio.h"
#include "mirrord/config.h"
#include "mirrord/record_check.h"
#include "mirrord/store_registry.h"

namespace mirror::d {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::ip::tcp::socket socket, const MirrordConfig& config,
             StoreRegistry& registry, boost::asio::thread_pool& blocking);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // Sends ERROR(shutting-down) and closes.
  void Shutdown();
  // If this is (or is becoming) source `source_id`'s connection: sends ERROR(refusal) and
  // closes (a promote fences the source's live connection this way).
  void RefuseIfSource(const std::string& source_id, const Refusal& refusal);

 private:
  enum class Phase { kHandshake, kStarting, kStreaming, kClosed };

  void ReadHeader();
  void OnHeader(const boost::system::error_code& ec);
  void OnPayload(const boost::system::error_code& ec);
  void OnHandshakeFrame(const common::Message& msg);
  void StartSession();
  void OnSessionStarted(common::Result<SessionInfo> info, SourceStore* store, Refusal refusal);
  void OnStreamFrame(const common::Message& msg);
  void OnRecords(const common::RecordsMsg& msg);
  void TryReceive();
  void OnQueryFrame(const common::Message& msg);

  // Jobs for the blocking pool, in frame order (see above).
  struct Job {
    enum class Kind { kSync, kResync, kResyncDone, kManifest, kSums };
    Job(Kind k, uint64_t s, uint64_t t = 0, uint32_t a = 0, std::string p = {})
        : kind(k), seq(s), token(t), arg(a), path(std::move(p)) {}
    Kind kind;
    uint64_t seq;      // cp_seq, next_seq, through_seq; queries: received_seq at the request
    uint64_t token;    // queries
    uint32_t arg;      // MANIFEST_REQUEST flags, SUMS_REQUEST block_size
    std::string path;  // SUMS_REQUEST
  };
  void AddJob(Job job);
  void RunNextJob();
  void RunSync(const Job& job);
  void RunResync(const Job& job);
  void RunResyncDone(const Job& job);
  void RunManifest(const Job& job);
  void RunSums(const Job& job);
  // The next MANIFEST frame of the oldest manifest being sent.
  std::string NextManifestFrame();

  void WantAck();
  void Send(std::string frame);
  void KickWrite();
  void Refuse(const Refusal& refusal);
  void Close(const std::string& why);
  void ArmTimer(std::chrono::steady_clock::time_point at);
  void OnTimer();

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  const MirrordConfig& config_;
  StoreRegistry& registry_;
  boost::asio::thread_pool& blocking_;
  std::string peer_;

  Phase phase_ = Phase::kHandshake;
  common::ServerHandshake handshake_;
  std::string welcome_;  // the handshake's WELCOME, re-sent with the session's seqs
  std::string source_id_;
  SourceStore* store_ = nullptr;  // owned by the registry
  uint64_t token_ = 0;

  std::array<char, common::kFrameHeaderSize> header_{};
  common::FrameHeader frame_{};
  std::vector<char> payload_;
  std::string_view pending_records_;  // part of a RECORDS frame not yet taken
  uint32_t pending_count_ = 0;
  bool waiting_for_room_ = false;

  // The timer times the handshake, then (idle_timeout > 0) idleness, or after a refusal
  // the ERROR's write. Idle: the deadline is last_activity_ + idle_timeout, and the
  // timer, armed once, re-arms itself until that passed (see ReadHeader).
  bool idle_timer_armed_ = false;                        // the timer's wait is the idle timeout's
  std::chrono::steady_clock::time_point last_activity_;  // ReadHeader last began a read

  std::deque<Job> jobs_;  // not yet started
  bool job_running_ = false;
  bool resync_running_ = false;  // a RESYNC was read and is not answered yet

  struct ManifestStream {
    uint64_t token = 0;
    std::shared_ptr<const common::Manifest> manifest;
    size_t next = 0;  // the first entry not sent yet
  };
  std::deque<ManifestStream> manifests_;  // answers being sent, oldest first
  bool last_was_ack_ = false;             // the last frame written was an ACK

  std::deque<std::string> out_;
  std::string writing_;
  bool write_busy_ = false;
  bool ack_wanted_ = false;
  bool close_after_write_ = false;
};

}  // namespace mirror::d
