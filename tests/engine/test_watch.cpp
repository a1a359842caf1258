// What a run shows while it goes: progress reported from inside long work (the mapping of parts
// and steps onto one progress unit) and the checksums of TensorBoard's event framing. The event
// files themselves are decoded against the public format in tests/cli/test_watch.py.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ardkit/host/event_file.hpp"
#include "ardkit/progress.hpp"

TEST_CASE("CRC-32C and TFRecord's mask match the published check values") {
  const std::string digits = "123456789";
  CHECK(ardkit::crc32c(digits.data(), digits.size()) == 0xE3069283u);  // RFC 3720's check value
  const std::string zeros(32, '\0');
  CHECK(ardkit::crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);  // RFC 3720 B.4
  const uint32_t crc = 0xE3069283u;
  CHECK(ardkit::masked_crc32c(digits.data(), digits.size()) ==
        ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST_CASE("progress inside a unit: parts and steps map onto the unit, labels lead the detail") {
  std::vector<std::pair<double, std::string>> seen;
  bool due = true;
  {
    ardkit::ProgressWithin within([&] { return due; },
                                  [&](double f, const std::string& d) { seen.emplace_back(f, d); });
    {
      const ardkit::ProgressPart first(0.0, 0.25, "apgd-ce (robust 10/10) ");
      ardkit::report_progress(50, 100, [] { return std::string("step 50/100"); });
    }
    const ardkit::ProgressPart second(0.25, 1.0, "apgd-t (robust 7/10) ");
    {
      const ardkit::ProgressPart target(1.0 / 3, 2.0 / 3, "target 2/3 ");
      ardkit::report_progress(0, 10, [] { return std::string("step 0/10"); });
      due = false;  // not due: the detail is not even built
      ardkit::report_progress(5, 10, []() -> std::string {
        FAIL("built when not due");
        return {};
      });
    }
  }
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].first == doctest::Approx(0.125));
  CHECK(seen[0].second == "apgd-ce (robust 10/10) step 50/100");
  CHECK(seen[1].first == doctest::Approx(0.25 + 0.75 / 3));
  CHECK(seen[1].second == "apgd-t (robust 7/10) target 2/3 step 0/10");
  // Nobody listening (a training step's attack): reports and parts do nothing.
  CHECK_FALSE(ardkit::progress_due());
  const ardkit::ProgressPart orphan(0, 1, "x");
  ardkit::report_progress_now(1, 2, "ignored");
}
