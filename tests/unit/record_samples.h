// One valid op of every record type, with non-trivial field values, for codec tests
// and for any test that needs "one of everything".
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

#include "common/record.h"

namespace mirror::test {

inline std::vector<common::Op> SampleOpsOfEveryType() {
  using namespace mirror::common;
  static const std::string kData(5000, 'd');
  const Timespec t1{1700000000, 123456789}, t2{1700000001, 5};
  return {
      WriteOp{"dir/file", 4096, t1, kData},
      TruncateOp{"dir/file", 1234567, t1},
      FallocateOp{"dir/file", 0x01 | 0x02, 8192, 4096, t2},  // keep size | punch hole
      CreateOp{"dir/new", S_IFREG | 0640, 1000, 1001, t1, t2},
      MknodOp{"dir/fifo", S_IFIFO | 0600, 0, 1, 2, t1, t2},
      MkdirOp{"dir/sub", S_IFDIR | 02755, 0, 50, t1, t2},
      SymlinkOp{"dir/link", 3, 4, t1, t2, "../elsewhere/target"},
      LinkOp{"dir/file", "other/hard", t2},
      UnlinkOp{"dir/gone", t1},
      RmdirOp{"dir/emptied", t1},
      RenameOp{"a/b", "c/d", kRenameExchange, t1, t2},
      ChmodOp{".", 01777},
      ChownOp{"dir/file", 65534, kIdUnchanged, 0755},
      UtimensOp{"dir/file", Timespec{0, kTimeOmit}, Timespec{-5, 999999999}},
      SetxattrOp{"dir/file", "user.comment", std::string_view("va\0lue", 6)},
      RemovexattrOp{".", "trusted.x"},
      CheckpointOp{},
      VoidOp{RecordType::kUnlink, "opaque, never interpreted"},
  };
}

}  // namespace mirror::test
