// Constants of the source journal file (docs/formats.md, "Journal file").
//
// The journal is a fixed-size file: a 4 KiB header page holding two 512-byte header
// slots (A at 0, B at 512), then a ring of records (common/record.h bytes, unchanged)
// from kJournalDataStart to the end of the file. Every integer is little-endian.
//
// Header slot layout (format version 1):
//
//   offset size field
//   0      8    magic          "MFSJRNL1"
//   8      4    version        kJournalFormatVersion
//   12     4    header size    kJournalSlotSize
//   16     8    file size      bytes, a multiple of 4096, at least kJournalMinFileBytes
//   24     8    data start     kJournalDataStart
//   32     8    epoch          every live record carries it
//   40     8    generation     +1 on every header write; the higher valid slot wins
//   48     8    tail offset    file offset of the oldest live record
//   56     8    tail seq       its seq; when the ring is empty, the next seq to assign
//   64     128  source id      u8 length (<= 127), bytes, zero padding
//   192    128  volume id      as source id
//   320    4    masked crc     CRC32C of bytes [0, 320), masked
//   324    188  reserved       zero
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mirror::common {

inline constexpr uint32_t kJournalFormatVersion = 1;
inline constexpr std::string_view kJournalMagic = "MFSJRNL1";
static_assert(kJournalMagic.size() == 8);

inline constexpr uint64_t kJournalPageSize = 4096;
inline constexpr uint64_t kJournalDataStart = 4096;  // the ring starts after the header page
inline constexpr uint64_t kJournalMinFileBytes = 1u << 20;

inline constexpr uint32_t kJournalSlotSize = 512;
inline constexpr uint64_t kJournalSlotOffsets[2] = {0, 512};
// The released-prefix hint: a u64 at this file offset, outside both slots and outside
// any CRC. It is the highest seq below which every record was released (its change done
// on the source), updated by an 8-byte store per release. After a kill -9 it tells which
// records were still in flight; it is only a hint: recovery clamps it to the live range.
inline constexpr uint64_t kJournalReleasedHintOffset = 1024;
static_assert(kJournalSlotOffsets[1] + kJournalSlotSize <= kJournalDataStart);

// Slot field offsets.
inline constexpr size_t kSlotMagic = 0;
inline constexpr size_t kSlotVersion = 8;
inline constexpr size_t kSlotHeaderSize = 12;
inline constexpr size_t kSlotFileSize = 16;
inline constexpr size_t kSlotDataStart = 24;
inline constexpr size_t kSlotEpoch = 32;
inline constexpr size_t kSlotGeneration = 40;
inline constexpr size_t kSlotTailOffset = 48;
inline constexpr size_t kSlotTailSeq = 56;
inline constexpr size_t kSlotSourceId = 64;
inline constexpr size_t kSlotVolumeId = 192;
inline constexpr size_t kSlotCrc = 320;  // the CRC covers [0, kSlotCrc)
inline constexpr size_t kJournalIdFieldSize = 128;
inline constexpr size_t kJournalMaxIdBytes = kJournalIdFieldSize - 1;  // u8 length + bytes
static_assert(kSlotVolumeId + kJournalIdFieldSize == kSlotCrc);
static_assert(kSlotCrc + 4 <= kJournalSlotSize);

// Ring rules. Every record starts kJournalAlign-aligned and occupies
// AlignUp(length, kJournalAlign) bytes. A record never straddles the end of the file:
// when it does not fit in [head, end), a wrap marker (a u32 that no record length can
// equal) is written at head and the record goes to the data start. At least
// kJournalMinGap bytes stay free, so head == tail means "empty".
inline constexpr uint64_t kJournalAlign = 8;
inline constexpr uint32_t kJournalWrapMarker = 0xffffffffu;
inline constexpr uint64_t kJournalMinGap = kJournalAlign;

inline constexpr uint64_t JournalAlignUp(uint64_t n) {
  return (n + kJournalAlign - 1) & ~(kJournalAlign - 1);
}

}  // namespace mirror::common
