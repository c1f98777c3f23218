// What mirrord checks on every record a source sends, before the record is copied into
// memory, and the wire error each failure is answered with (docs/formats.md, "Wire
// frames and handshake": ERROR codes).
//
// Order of checks: size and length limit (oversized), CRC (bad-crc), type
// (unknown-type), seq (sequence-gap: a gap or a duplicate), epoch (stale-epoch when
// older than the source's, protocol when newer than its session's), fields: a path that
// breaks the path rules is `escape`, any other malformed field `protocol`. A mknod of a
// character or block device is `device-refused` unless the source may create them. The
// record is decoded once (DecodeRecord checks the CRC); the CRC is computed separately
// only to name the failure.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/frame.h"
#include "common/record.h"
#include "common/status.h"

namespace mirror::d {

// Why mirrord refuses something a source sent: the code of the ERROR frame and a
// message for the peer and the log.
struct Refusal {
  common::WireError code = common::WireError::kProtocol;
  std::string message;
};

struct IncomingRecordRules {
  uint64_t expected_seq = 1;
  uint64_t epoch = 0;  // the session's epoch: records must carry exactly this one
  bool allow_devices = false;
  common::DecodeLimits limits;
};

// Checks the record at the start of `bytes` (which may extend past it). On success
// returns its length in bytes.
std::optional<Refusal> CheckIncomingRecord(std::string_view bytes, const IncomingRecordRules& rules,
                                           uint32_t* length);

}  // namespace mirror::d
