#include "common/journal_header.h"

#include <cstring>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/journal_format.h"

namespace mirror::common {
namespace {

void PutId(char* field, std::string_view id) {
  std::memset(field, 0, kJournalIdFieldSize);
  field[0] = static_cast<char>(static_cast<uint8_t>(id.size()));
  std::memcpy(field + 1, id.data(), id.size());
}

Result<std::string> GetId(const char* field, const char* what) {
  auto len = static_cast<uint8_t>(field[0]);
  if (len > kJournalMaxIdBytes) {
    return Status::Corruption(std::string(what) + " length " + std::to_string(len) + " exceeds " +
                              std::to_string(kJournalMaxIdBytes));
  }
  return std::string(field + 1, len);
}

}  // namespace

Status CheckJournalId(std::string_view id, std::string_view what) {
  if (id.size() > kJournalMaxIdBytes) {
    return Status::InvalidArgument(std::string(what) + " is " + std::to_string(id.size()) +
                                   " bytes; a journal holds at most " +
                                   std::to_string(kJournalMaxIdBytes));
  }
  return {};
}

Status CheckJournalSize(uint64_t size) {
  if (size < kJournalMinFileBytes) {
    return Status::InvalidArgument("journal too small: " + std::to_string(size) +
                                   " bytes; the minimum is " +
                                   std::to_string(kJournalMinFileBytes));
  }
  if (size % kJournalPageSize != 0) {
    return Status::InvalidArgument("journal size " + std::to_string(size) +
                                   " is not a multiple of " + std::to_string(kJournalPageSize));
  }
  return {};
}

void EncodeHeaderSlot(const JournalHeader& h, char* out) {
  std::memset(out, 0, kJournalSlotSize);
  std::memcpy(out + kSlotMagic, kJournalMagic.data(), kJournalMagic.size());
  StoreLE(out + kSlotVersion, kJournalFormatVersion);
  StoreLE(out + kSlotHeaderSize, kJournalSlotSize);
  StoreLE(out + kSlotFileSize, h.file_size);
  StoreLE(out + kSlotDataStart, h.data_start);
  StoreLE(out + kSlotEpoch, h.epoch);
  StoreLE(out + kSlotGeneration, h.generation);
  StoreLE(out + kSlotTailOffset, h.tail_offset);
  StoreLE(out + kSlotTailSeq, h.tail_seq);
  PutId(out + kSlotSourceId, h.source_id);
  PutId(out + kSlotVolumeId, h.volume_id);
  StoreLE(out + kSlotCrc, crc32c::Mask(crc32c::Value(out, kSlotCrc)));
}

Result<JournalHeader> DecodeHeaderSlot(std::string_view slot) {
  if (slot.size() < kJournalSlotSize) return Status::Corruption("slot truncated");
  const char* p = slot.data();
  if (std::memcmp(p + kSlotMagic, kJournalMagic.data(), kJournalMagic.size()) != 0) {
    return Status::Corruption("bad magic");
  }
  auto version = LoadLE<uint32_t>(p + kSlotVersion);
  uint32_t stored = crc32c::Unmask(LoadLE<uint32_t>(p + kSlotCrc));
  if (stored != crc32c::Value(p, kSlotCrc)) {
    // A flipped version byte is damage, not a newer format; but say what it reads.
    return Status::Corruption(version == kJournalFormatVersion
                                  ? "CRC mismatch"
                                  : "CRC mismatch (version field reads " + std::to_string(version) +
                                        ")");
  }
  if (version != kJournalFormatVersion) {
    return Status::Mismatch("journal format version " + std::to_string(version) +
                            "; this build reads version " + std::to_string(kJournalFormatVersion));
  }
  JournalHeader h;
  auto header_size = LoadLE<uint32_t>(p + kSlotHeaderSize);
  h.file_size = LoadLE<uint64_t>(p + kSlotFileSize);
  h.data_start = LoadLE<uint64_t>(p + kSlotDataStart);
  h.epoch = LoadLE<uint64_t>(p + kSlotEpoch);
  h.generation = LoadLE<uint64_t>(p + kSlotGeneration);
  h.tail_offset = LoadLE<uint64_t>(p + kSlotTailOffset);
  h.tail_seq = LoadLE<uint64_t>(p + kSlotTailSeq);
  if (header_size != kJournalSlotSize) {
    return Status::Corruption("header size " + std::to_string(header_size));
  }
  if (h.data_start != kJournalDataStart) {
    return Status::Corruption("data start " + std::to_string(h.data_start));
  }
  if (!CheckJournalSize(h.file_size).ok()) {
    return Status::Corruption("file size " + std::to_string(h.file_size));
  }
  if (h.tail_offset < h.data_start || h.tail_offset >= h.file_size ||
      h.tail_offset % kJournalAlign != 0) {
    return Status::Corruption("tail offset " + std::to_string(h.tail_offset));
  }
  if (h.tail_seq == 0) return Status::Corruption("tail seq 0");
  MIRROR_ASSIGN_OR_RETURN(h.source_id, GetId(p + kSlotSourceId, "source id"));
  MIRROR_ASSIGN_OR_RETURN(h.volume_id, GetId(p + kSlotVolumeId, "volume id"));
  return h;
}

Result<ChosenHeader> ChooseHeader(std::string_view page, std::string_view file_name) {
  const char* kNames[2] = {"A", "B"};
  Result<JournalHeader> slots[2] = {Status::Corruption("unread"), Status::Corruption("unread")};
  for (int i = 0; i < 2; ++i) {
    uint64_t at = kJournalSlotOffsets[i];
    slots[i] = at < page.size() ? DecodeHeaderSlot(page.substr(at))
                                : Result<JournalHeader>(Status::Corruption("slot truncated"));
  }
  if (slots[0].ok() || slots[1].ok()) {
    int best = !slots[1].ok()                                ? 0
               : !slots[0].ok()                              ? 1
               : slots[1]->generation > slots[0]->generation ? 1
                                                             : 0;
    return ChosenHeader{std::move(slots[best]).value(), best};
  }
  for (int i = 0; i < 2; ++i) {
    if (slots[i].status().code() == Code::kMismatch) {
      return slots[i].status().Annotate(std::string(file_name));
    }
  }
  std::string why = "journal header damaged: " + std::string(file_name);
  for (int i = 0; i < 2; ++i) {
    why += std::string(i == 0 ? ": " : "; ") + "slot " + kNames[i] + ": " +
           slots[i].status().message();
  }
  return Status::Corruption(why);
}

}  // namespace mirror::common
