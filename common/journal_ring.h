// Walking the journal's ring of records (layout in common/journal_format.h).
//
// RingWalker reads records in ring order from a record boundary, following wrap
// markers, and stops at the first position that does not hold the expected next record:
// never-written space (zero length), a header or CRC that fails, a seq other than the
// expected one (a stale record of an earlier lap), an epoch other than the journal's,
// or a record that would reach the tail again. Each stop has a reason string.
// Recovery, Free and the read cursor all use it; a walk costs one header read per
// record (plus the whole record when it decodes), there is no index.
//
// Thread-safety: a walker is owned by one thread; it reads the medium only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/journal_medium.h"
#include "common/record.h"
#include "common/status.h"

namespace mirror::common {

struct RingGeometry {
  uint64_t data_start = 0;
  uint64_t end = 0;  // the file size
  uint64_t capacity() const { return end - data_start; }
  // Distance going forward around the ring from `from` to `to` (0 when equal).
  uint64_t Distance(uint64_t from, uint64_t to) const {
    return to >= from ? to - from : capacity() - (from - to);
  }
};

class RingWalker {
 public:
  // Starts at `offset` (a record boundary or a wrap marker), expecting `seq` there.
  // `medium` must outlive the walker.
  RingWalker(const JournalMedium* medium, RingGeometry geometry, uint64_t epoch,
             DecodeLimits limits, uint64_t offset, uint64_t seq);

  enum class Mode { kHeaderOnly, kFullDecode };

  // Reads the record at the current position. true: it is the expected one; the walker
  // moved past it. false: the walk stopped here (stop_reason() says why; the position
  // stays after the last good record). An error: the medium could not be read.
  Result<bool> Next(Mode mode);

  // The walk stops before a record that would bring consumed() within kJournalMinGap
  // of this many bytes; by default the ring's capacity, which holds from the tail.
  // A cursor that outlives Frees sets it to UINT64_MAX (its limit is a seq instead).
  void set_budget(uint64_t bytes) { budget_ = bytes; }

  uint64_t offset() const { return offset_; }      // after the last good record
  uint64_t next_seq() const { return seq_; }       // the seq expected next
  uint64_t consumed() const { return consumed_; }  // ring bytes walked so far
  const std::string& stop_reason() const { return stop_reason_; }

  // The last good record (kFullDecode): its offset, bytes and decoded form. Views
  // point into the medium or the walker's scratch; valid until the next Next().
  uint64_t record_offset() const { return record_offset_; }
  std::string_view record_bytes() const { return record_bytes_; }
  const Record& record() const { return *record_; }
  const RecordHeader& header() const { return header_; }

 private:
  bool Stop(uint64_t at, std::string why);

  const JournalMedium* medium_;
  RingGeometry geo_;
  uint64_t epoch_;
  DecodeLimits limits_;
  uint64_t offset_;
  uint64_t seq_;
  uint64_t consumed_ = 0;
  uint64_t budget_;
  std::string stop_reason_;
  uint64_t record_offset_ = 0;
  RecordHeader header_;
  std::string_view record_bytes_;
  std::optional<Record> record_;
  std::string scratch_;
};

// Scans the free part of the ring, [from, to) going forward (the whole ring when
// from == to), at every kJournalAlign step for records that decode, carry `epoch` and
// have a seq >= min_seq: appends that were never acknowledged, or good records after
// damage. Returns their offsets.
Result<std::vector<uint64_t>> FindStrayRecords(const JournalMedium& medium,
                                               const RingGeometry& geometry, uint64_t epoch,
                                               const DecodeLimits& limits, uint64_t from,
                                               uint64_t to, uint64_t min_seq);

}  // namespace mirror::common
