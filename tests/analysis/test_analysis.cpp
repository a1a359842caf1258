// `ardkit analyze`'s measures against NumPy (tests/analysis/make_reference.py computes them from
// their definitions on fixed features, run first by CTest).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include "analysis.hpp"

#include "test_util.hpp"

TEST_CASE("representation measures match NumPy on fixed features") {
  const auto dir = test::reference_dir("ARDKIT_ANALYSIS_REFERENCE_DIR");
  const auto f = test::load_tensors(dir / "features.pt");
  std::ifstream in(dir / "expected.json");
  REQUIRE(in.good());
  const auto expected = nlohmann::json::parse(in);
  namespace a = ardkit::analysis;
  const auto near = [&](double value, const char* key) {
    CAPTURE(key);
    CHECK(value == doctest::Approx(expected.at(key).get<double>()).epsilon(1e-9));
  };
  near(a::linear_cka(f.at("a"), f.at("b")), "cka_ab");
  near(a::linear_cka(f.at("a"), f.at("c")), "cka_ac");
  near(a::linear_cka(f.at("a"), f.at("rotated")), "cka_rotated");
  near(a::structure_correlation(f.at("a"), f.at("b")), "structure_ab");
  near(a::structure_correlation(f.at("a"), f.at("c")), "structure_ac");
  near(a::relative_shift(f.at("a"), f.at("a_moved")), "shift");
  near(a::agreement(f.at("logits_a"), f.at("logits_b")), "agreement");
  // Symmetric, and float32 features give the same numbers (computed in double).
  CHECK(a::linear_cka(f.at("b"), f.at("a")) ==
        doctest::Approx(a::linear_cka(f.at("a"), f.at("b"))));
  CHECK(a::linear_cka(f.at("a").to(torch::kFloat), f.at("b").to(torch::kFloat)) ==
        doctest::Approx(expected.at("cka_ab").get<double>()).epsilon(1e-5));
  CHECK_THROWS_AS(a::linear_cka(f.at("a"), f.at("a").narrow(0, 0, 10)), ardkit::Error);
}
