// Connection's jobs: the frames whose answer needs the blocking pool (SYNC, RESYNC,
// RESYNC_DONE, MANIFEST_REQUEST, SUMS_REQUEST), run one at a time in frame order, and the
// MANIFEST frames that stream a manifest out.
#include <span>
#include <utility>

#include "common/record.h"
#include "mirrord/connection.h"
#include "mirrord/log.h"

namespace mirror::d {

namespace asio = boost::asio;
using common::WireError;

namespace {

std::string EncodeOrEmpty(const common::Message& msg) {
  common::Result<std::string> bytes = common::EncodeFrame(msg);
  return bytes.ok() ? std::move(bytes).value() : std::string();
}

std::string Range(uint64_t from, uint64_t through) {
  if (from > through) return "none";
  return std::to_string(from) + ".." + std::to_string(through);
}

}  // namespace

// Frames answered after a job: checked now (so a refusal names the frame that broke the
// rule), run later in order with SYNCs. A query applies what was received before it.
void Connection::OnQueryFrame(const common::Message& msg) {
  const uint64_t received = store_->Stats().received_seq;
  if (const auto* done = std::get_if<common::ResyncDoneMsg>(&msg)) {
    if (done->through_seq > received) {
      return Refuse({WireError::kProtocol,
                     "resync done through seq " + std::to_string(done->through_seq) +
                         ", but only seq " + std::to_string(received) + " was received"});
    }
    AddJob(Job(Job::Kind::kResyncDone, done->through_seq));
  } else if (const auto* req = std::get_if<common::ManifestRequestMsg>(&msg)) {
    AddJob(Job(Job::Kind::kManifest, received, req->token, req->flags));
  } else if (const auto* sums = std::get_if<common::SumsRequestMsg>(&msg)) {
    if (common::Status s = common::CheckEntryPath(sums->path); !s.ok()) {
      return Refuse(
          {WireError::kEscape, "sums request: path would leave the image: " + s.message()});
    }
    AddJob(Job(Job::Kind::kSums, received, sums->token, sums->block_size, sums->path));
  }
  ReadHeader();
}

void Connection::AddJob(Job job) {
  if (job.kind == Job::Kind::kSync && !jobs_.empty() && jobs_.back().kind == Job::Kind::kSync) {
    jobs_.back().seq = std::max(jobs_.back().seq, job.seq);  // one SYNC_DONE answers both
  } else {
    jobs_.push_back(std::move(job));
  }
  RunNextJob();
}

void Connection::RunNextJob() {
  if (job_running_ || jobs_.empty() || phase_ == Phase::kClosed || close_after_write_) return;
  Job job = std::move(jobs_.front());
  jobs_.pop_front();
  job_running_ = true;
  switch (job.kind) {
    case Job::Kind::kSync:
      return RunSync(job);
    case Job::Kind::kResync:
      return RunResync(job);
    case Job::Kind::kResyncDone:
      return RunResyncDone(job);
    case Job::Kind::kManifest:
      return RunManifest(job);
    case Job::Kind::kSums:
      return RunSums(job);
  }
}

// Each Run* posts the store call to the blocking pool, and its answer back to the strand.
// An answer that finds the connection closed or refused (say, by a shutdown) is dropped:
// nothing but the ERROR goes out after a refusal.
void Connection::RunSync(const Job& job) {
  asio::post(blocking_, [self = shared_from_this(), store = store_, cp = job.seq] {
    Refusal refusal{WireError::kInternal, ""};
    bool ended = false;
    common::Result<uint64_t> applied = store->Sync(cp, &refusal, &ended);
    asio::post(self->socket_.get_executor(), [self, applied = std::move(applied), refusal, ended] {
      self->job_running_ = false;
      if (self->phase_ == Phase::kClosed || self->close_after_write_) return;
      if (!applied.ok()) return self->Refuse(refusal);
      if (ended) {
        LogSource(LogLevel::kNotice, self->source_id_,
                  "resync complete: the image is consistent at seq " + std::to_string(*applied));
      }
      self->Send(EncodeOrEmpty(common::SyncDoneMsg{*applied}));
      self->RunNextJob();
    });
  });
}

void Connection::RunResync(const Job& job) {
  asio::post(
      blocking_, [self = shared_from_this(), store = store_, token = token_, next = job.seq] {
        Refusal refusal{WireError::kInternal, ""};
        common::Result<ResyncInfo> info = store->Resync(token, next, &refusal);
        asio::post(self->socket_.get_executor(), [self, info = std::move(info), refusal] {
          self->job_running_ = false;
          self->resync_running_ = false;
          if (self->phase_ == Phase::kClosed || self->close_after_write_) return;
          if (!info.ok()) return self->Refuse(refusal);
          std::string line =
              "resync: the stream restarts at seq " + std::to_string(info->next_seq) +
              "; dropped received records " + Range(info->applied_seq + 1, info->received_seq) +
              " (not applied); the image stays at what seq " + std::to_string(info->applied_seq) +
              " gave and is not consistent " + "until the resync is done";
          if (!info->cleared_error.empty())
            line += "; cleared the apply error: " + info->cleared_error;
          LogSource(LogLevel::kNotice, self->source_id_, line);
          const uint64_t seq = info->next_seq - 1;
          self->Send(EncodeOrEmpty(common::AckMsg{seq, seq}));
          self->ReadHeader();
          self->RunNextJob();
        });
      });
}

void Connection::RunResyncDone(const Job& job) {
  asio::post(blocking_, [self = shared_from_this(), store = store_, through = job.seq] {
    Refusal refusal{WireError::kInternal, ""};
    common::Result<bool> ended = store->ResyncDone(through, &refusal);
    asio::post(self->socket_.get_executor(), [self, ended = std::move(ended), refusal, through] {
      self->job_running_ = false;
      if (self->phase_ == Phase::kClosed || self->close_after_write_) return;
      if (!ended.ok()) return self->Refuse(refusal);
      LogSource(LogLevel::kNotice, self->source_id_,
                *ended ? "resync complete: the image is consistent at seq " +
                             std::to_string(through) + " or later"
                       : "resync done through seq " + std::to_string(through) +
                             "; it completes once that is applied");
      self->RunNextJob();
    });
  });
}

void Connection::RunManifest(const Job& job) {
  common::ManifestOptions options;
  options.content_hashes = (job.arg & common::kManifestWantContentHashes) != 0;
  asio::post(blocking_, [self = shared_from_this(), store = store_, through = job.seq,
                         token = job.token, options] {
    auto answer = std::make_shared<ManifestAnswer>(store->ImageManifest(through, options));
    asio::post(self->socket_.get_executor(), [self, answer, token] {
      self->job_running_ = false;
      if (self->phase_ == Phase::kClosed || self->close_after_write_) return;
      if (answer->refusal) return self->Refuse(*answer->refusal);
      if (!answer->error.empty()) {
        LogSource(LogLevel::kWarning, self->source_id_, "manifest failed: " + answer->error);
        self->Send(EncodeOrEmpty(common::ManifestMsg{token, 1, answer->error, ""}));
      } else {
        auto manifest =
            std::shared_ptr<const common::Manifest>(answer, &answer->manifest);  // aliasing
        self->manifests_.push_back({token, std::move(manifest), 0});
        self->KickWrite();
      }
      self->RunNextJob();
    });
  });
}

void Connection::RunSums(const Job& job) {
  asio::post(blocking_, [self = shared_from_this(), store = store_, job] {
    auto answer = std::make_shared<SumsAnswer>(store->ImageSums(job.seq, job.path, job.arg));
    asio::post(self->socket_.get_executor(), [self, answer, token = job.token] {
      self->job_running_ = false;
      if (self->phase_ == Phase::kClosed || self->close_after_write_) return;
      if (answer->refusal) return self->Refuse(*answer->refusal);
      self->Send(EncodeOrEmpty(
          common::SumsMsg{token, answer->error, answer->size, std::move(answer->sums)}));
      self->RunNextJob();
    });
  });
}

std::string Connection::NextManifestFrame() {
  ManifestStream& m = manifests_.front();
  const common::Manifest& entries = *m.manifest;
  std::string bytes;
  std::string error;
  size_t i = m.next;
  for (; i < entries.size(); ++i) {
    const size_t before = bytes.size();
    common::EncodeManifestEntries(std::span(&entries[i], 1), &bytes);
    if (bytes.size() - before > common::kMaxManifestEntriesBytes) {
      error = "entry '" + entries[i].path + "' takes " + std::to_string(bytes.size() - before) +
              " bytes, more than a manifest frame holds";
      break;
    }
    if (bytes.size() > common::kManifestChunkBytes && before > 0) {
      bytes.resize(before);  // this entry starts the next frame
      break;
    }
  }
  common::ManifestMsg msg{m.token, 0, "", ""};
  if (!error.empty()) {
    LogSource(LogLevel::kWarning, source_id_, "manifest failed: " + error);
    msg.last = 1;
    msg.error = error;
  } else {
    msg.last = i == entries.size() ? 1 : 0;
    msg.entries = std::move(bytes);
  }
  m.next = i;
  if (msg.last == 1) manifests_.pop_front();
  std::string frame = EncodeOrEmpty(msg);
  if (frame.empty()) {  // cannot happen: every field is within its limit
    frame = EncodeOrEmpty(common::ManifestMsg{msg.token, 1, "cannot encode the manifest", ""});
  }
  return frame;
}

}  // namespace mirror::d
