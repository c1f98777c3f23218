// The journal's header slots: encoding, validation and the choice between slot A and
// slot B (layout in common/journal_format.h and docs/formats.md, "Journal file").
//
// A header write goes to the slot that does not hold the newest header, with the
// generation raised by one, and is synced; a torn header write therefore damages only
// the older copy. Thread-safety: all functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace mirror::common {

struct JournalHeader {
  uint64_t file_size = 0;
  uint64_t data_start = 0;
  uint64_t epoch = 0;
  uint64_t generation = 0;
  uint64_t tail_offset = 0;  // file offset of the oldest live record
  uint64_t tail_seq = 0;     // its seq; when the ring is empty, the next seq to assign
  std::string source_id;
  std::string volume_id;
};

// InvalidArgument unless `id` is at most kJournalMaxIdBytes bytes. `what` names it.
Status CheckJournalId(std::string_view id, std::string_view what);

// InvalidArgument unless `size` is a multiple of the page size and at least 1 MiB.
Status CheckJournalSize(uint64_t size);

// Writes one kJournalSlotSize-byte slot to `out`. The header must be valid.
void EncodeHeaderSlot(const JournalHeader& header, char* out);

// Validates one slot; Corruption says why it is not a usable header.
Result<JournalHeader> DecodeHeaderSlot(std::string_view slot);

struct ChosenHeader {
  JournalHeader header;
  int slot = 0;  // 0 (A) or 1 (B)
};

// Picks the valid slot with the highest generation from the header page (at least
// kJournalSlotOffsets[1] + kJournalSlotSize bytes). Corruption "journal header damaged"
// when neither is valid; Mismatch when a slot is intact but of another format version.
Result<ChosenHeader> ChooseHeader(std::string_view page, std::string_view file_name);

}  // namespace mirror::common
