// Boost.Asio for mirrorfs's replication client. Boost 1.74's asio/awaitable.hpp uses
// std::exchange without including <utility>, which g++ 12 (C++20) refuses; include it
// first. Include this header instead of <boost/asio.hpp>.
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on
