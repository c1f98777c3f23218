#include "common/crc32c.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace mirror::common;

namespace {

using ExtendFn = uint32_t (*)(uint32_t, const void*, size_t);

// Known vectors: RFC 3720 (iSCSI) appendix B.4 and the classic "123456789" check value.
void CheckKnownVectors(ExtendFn extend) {
  std::string zeros(32, '\0');
  CHECK(extend(0, zeros.data(), zeros.size()) == 0x8a9136aau);
  std::string ones(32, '\xff');
  CHECK(extend(0, ones.data(), ones.size()) == 0x62a8ab43u);
  std::string ascending(32, '\0'), descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[static_cast<size_t>(i)] = static_cast<char>(i);
    descending[static_cast<size_t>(i)] = static_cast<char>(31 - i);
  }
  CHECK(extend(0, ascending.data(), 32) == 0x46dd794eu);
  CHECK(extend(0, descending.data(), 32) == 0x113fdb5cu);
  CHECK(extend(0, "123456789", 9) == 0xe3069283u);
  CHECK(extend(0, "", 0) == 0u);
}

}  // namespace

TEST_CASE("PortableMatchesKnownVectors") { CheckKnownVectors(crc32c::ExtendPortable); }

TEST_CASE("HardwareMatchesKnownVectors") {
  if (!crc32c::HardwareAvailable()) MESSAGE("no SSE4.2 here: the hardware entry falls back");
  CheckKnownVectors(crc32c::ExtendHardware);
  CheckKnownVectors(crc32c::Extend);
}

// The hardware path has three block sizes (3x8 KiB, 3x256 B, 8 B) and an unaligned
// head; every length and alignment around those edges must agree with the table path.
TEST_CASE("HardwareAgreesWithPortableAtEveryLengthAndAlignment") {
  std::mt19937_64 rng(42);
  std::vector<unsigned char> buf(3 * 8192 * 2 + 64);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n < 80; ++n) lengths.push_back(n);
  for (size_t edge : {768u, 3u * 8192u}) {
    for (size_t d = 0; d < 20; ++d) {
      lengths.push_back(edge - 10 + d);
      lengths.push_back(2 * edge - 10 + d);
    }
  }
  lengths.push_back(buf.size() - 8);
  for (size_t align = 0; align < 8; ++align) {
    for (size_t n : lengths) {
      if (align + n > buf.size()) continue;
      uint32_t seed = static_cast<uint32_t>(rng());
      REQUIRE(crc32c::ExtendHardware(seed, buf.data() + align, n) ==
              crc32c::ExtendPortable(seed, buf.data() + align, n));
    }
  }
}

TEST_CASE("ExtendEqualsValueOfConcatenation") {
  std::string a = "hello ", b = "world";
  uint32_t whole = crc32c::Value((a + b).data(), a.size() + b.size());
  CHECK(crc32c::Extend(crc32c::Value(a.data(), a.size()), b.data(), b.size()) == whole);
}

TEST_CASE("MaskRoundTripsAndDiffers") {
  for (uint32_t crc : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    CHECK(crc32c::Unmask(crc32c::Mask(crc)) == crc);
    CHECK(crc32c::Mask(crc) != crc);
    CHECK(crc32c::Mask(crc32c::Mask(crc)) != crc);
  }
}
