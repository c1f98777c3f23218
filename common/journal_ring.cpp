#include "common/journal_ring.h"

#include <algorithm>

#include "common/endian.h"
#include "common/journal_format.h"

namespace mirror::common {
namespace {

std::string At(uint64_t offset) { return "offset " + std::to_string(offset); }

}  // namespace

RingWalker::RingWalker(const JournalMedium* medium, RingGeometry geometry, uint64_t epoch,
                       DecodeLimits limits, uint64_t offset, uint64_t seq)
    : medium_(medium),
      geo_(geometry),
      epoch_(epoch),
      limits_(limits),
      offset_(offset),
      seq_(seq),
      budget_(geometry.capacity()) {}

bool RingWalker::Stop(uint64_t at, std::string why) {
  stop_reason_ = At(at) + ": " + std::move(why);
  return false;
}

Result<bool> RingWalker::Next(Mode mode) {
  record_.reset();
  record_bytes_ = {};
  stop_reason_.clear();
  uint64_t pos = offset_;
  uint64_t skipped = 0;  // bytes passed over at a wrap marker
  // One read for the marker check and the header (one pread with the pwrite medium).
  // pos is 8-aligned and below the end, so at least 8 bytes are there.
  auto read_head = [&] {
    return medium_->Read(pos, std::min<uint64_t>(kRecordHeaderSize, geo_.end - pos), &scratch_);
  };
  MIRROR_ASSIGN_OR_RETURN(std::string_view head, read_head());
  if (LoadLE<uint32_t>(head.data()) == kJournalWrapMarker) {
    skipped = geo_.end - pos;
    pos = geo_.data_start;
    MIRROR_ASSIGN_OR_RETURN(head, read_head());
  }
  if (IsEndMarker(head)) return Stop(pos, "end of data (zero length)");
  if (head.size() < kRecordHeaderSize) return Stop(pos, "no room for a record before the end");
  Result<RecordHeader> h = DecodeHeader(head, limits_);
  if (!h.ok()) return Stop(pos, h.status().message());
  const uint64_t aligned = JournalAlignUp(h->length);
  if (aligned > geo_.end - pos) {
    return Stop(pos,
                "record of " + std::to_string(h->length) + " bytes runs past the end of the ring");
  }
  // A live record never takes the last kJournalMinGap bytes before the tail.
  if (budget_ - consumed_ < skipped + aligned + kJournalMinGap) {
    return Stop(pos, "record of " + std::to_string(h->length) + " bytes would reach the tail");
  }
  if (h->meta.epoch != epoch_) {
    return Stop(pos, "record of epoch " + std::to_string(h->meta.epoch) + ", not the journal's " +
                         std::to_string(epoch_) + " (stale bytes)");
  }
  if (h->meta.seq != seq_) {
    return Stop(pos, "record with seq " + std::to_string(h->meta.seq) + " where seq " +
                         std::to_string(seq_) + " was expected (stale record of an earlier lap)");
  }
  header_ = *h;
  if (mode == Mode::kFullDecode) {
    MIRROR_ASSIGN_OR_RETURN(record_bytes_, medium_->Read(pos, h->length, &scratch_));
    Result<Record> rec = DecodeRecord(record_bytes_, limits_);
    if (!rec.ok()) {
      record_bytes_ = {};
      return Stop(pos, rec.status().message());
    }
    record_ = std::move(rec).value();
  }
  record_offset_ = pos;
  offset_ = pos + aligned == geo_.end ? geo_.data_start : pos + aligned;
  consumed_ += skipped + aligned;
  ++seq_;
  return true;
}

Result<std::vector<uint64_t>> FindStrayRecords(const JournalMedium& medium, const RingGeometry& geo,
                                               uint64_t epoch, const DecodeLimits& limits,
                                               uint64_t from, uint64_t to, uint64_t min_seq) {
  constexpr uint64_t kChunk = 1u << 20;
  struct Segment {
    uint64_t begin, end;
  };
  std::vector<Segment> segments;
  if (from < to) {
    segments.push_back({from, to});
  } else {
    segments.push_back({from, geo.end});
    segments.push_back({geo.data_start, to});
  }
  std::vector<uint64_t> found;
  std::string chunk_scratch, record_scratch;
  for (const Segment& seg : segments) {
    for (uint64_t base = seg.begin; base < seg.end; base += kChunk) {
      const uint64_t n = std::min(kChunk, seg.end - base);
      MIRROR_ASSIGN_OR_RETURN(std::string_view chunk, medium.Read(base, n, &chunk_scratch));
      // The view of `bytes` at `p`: from the chunk when it holds them, else a read.
      auto view = [&](uint64_t i, uint64_t len) -> Result<std::string_view> {
        if (i + len <= n) return chunk.substr(i, len);
        return medium.Read(base + i, len, &record_scratch);
      };
      for (uint64_t i = 0; i + 4 <= n; i += kJournalAlign) {
        auto len = LoadLE<uint32_t>(chunk.data() + i);
        // Cheap filters first: most positions hold payload bytes or zeros.
        if (len < kRecordHeaderSize || len > limits.max_record_bytes) continue;
        if (base + i + len > geo.end) continue;
        MIRROR_ASSIGN_OR_RETURN(std::string_view head, view(i, kRecordHeaderSize));
        Result<RecordHeader> h = DecodeHeader(head, limits);
        if (!h.ok() || h->meta.epoch != epoch || h->meta.seq < min_seq) continue;
        MIRROR_ASSIGN_OR_RETURN(std::string_view bytes, view(i, len));
        if (DecodeRecord(bytes, limits).ok()) found.push_back(base + i);
      }
    }
  }
  return found;
}

}  // namespace mirror::common
