// Record builders shared by mirrord's unit and integration tests.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/record.h"

namespace mirror::d::test {

// A write record of `seq` whose data (and so size) differs per seq.
inline std::string WriteRec(uint64_t seq, uint64_t epoch = 1, size_t data_bytes = 0,
                            const std::string& path = "file") {
  if (data_bytes == 0) data_bytes = 20 + (seq * 37) % 200;
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + (seq * 7 + i) % 26);
  auto bytes = common::EncodeRecord({seq, epoch, 1700000000000000000 + static_cast<int64_t>(seq)},
                                    common::WriteOp{path, seq * 10, {1700000000, 5}, data});
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().ToString());
  return *bytes;
}

inline std::string OpRec(uint64_t seq, const common::Op& op, uint64_t epoch = 1) {
  auto bytes = common::EncodeRecord({seq, epoch, 1700000000000000000}, op);
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().ToString());
  return *bytes;
}

// A small history touching every kind of namespace change: records seq first..,
// in a directory `dir` (created first).
inline std::vector<std::string> SampleHistory(uint64_t first, const std::string& dir = "d",
                                              uint64_t epoch = 1) {
  using namespace mirror::common;
  const Timespec t1{1700000000, 1}, t2{1700000100, 2};
  static thread_local std::vector<std::string> paths;  // views must outlive encoding
  paths = {dir, dir + "/a", dir + "/b", dir + "/c", dir + "/sub", dir + "/ln", dir + "/hard"};
  std::vector<Op> ops = {
      MkdirOp{paths[0], S_IFDIR | 0755, 0, 0, t1, t2},
      CreateOp{paths[1], S_IFREG | 0644, 0, 0, t1, t2},
      WriteOp{paths[1], 0, t2, "hello world"},
      CreateOp{paths[2], S_IFREG | 0600, 1, 2, t1, t2},
      RenameOp{paths[2], paths[3], 0, t2, t2},
      MkdirOp{paths[4], S_IFDIR | 0700, 0, 0, t1, t2},
      SymlinkOp{paths[5], 0, 0, t1, t2, "a"},
      LinkOp{paths[1], paths[6], t2},
      ChmodOp{paths[1], 0640},
      SetxattrOp{paths[1], "user.k", "v"},
      TruncateOp{paths[3], 100, t2},
      UnlinkOp{paths[6], t2},
      UtimensOp{paths[0], t1, t2},
      CheckpointOp{},
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < ops.size(); ++i) out.push_back(OpRec(first + i, ops[i], epoch));
  return out;
}

}  // namespace mirror::d::test
