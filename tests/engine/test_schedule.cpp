// Learning-rate schedules: each type's values at epoch and batch granularity, warm-up, and the
// errors a bad [schedule] table gets.
#include <ardkit/host/config.hpp>
#include <ardkit/host/lr_schedule.hpp>

#include "test_util.hpp"

using test::contains;

namespace {

ardkit::Params table(const ardkit::ParamSchema& schema, const std::string& text) {
  const auto parsed = toml::parse(text);
  return ardkit::validate_table(schema, parsed, "s.toml", "schedule");
}

ardkit::LrSchedule schedule(const std::string& schedule_text, double lr = 0.1,
                            int64_t epochs = 200) {
  const auto optimizer = table(ardkit::optimizer_schema(), "lr = " + std::to_string(lr));
  return ardkit::LrSchedule(optimizer, table(ardkit::schedule_schema(), schedule_text), epochs);
}

}  // namespace

TEST_CASE("multistep: ARD's effective schedule and RSLAD's three decays, per epoch") {
  const auto ard = schedule("type = \"multistep\"\nmilestones = [100]");
  CHECK_FALSE(ard.per_batch());
  CHECK(ard.at(0, 0, 391) == doctest::Approx(0.1));
  CHECK(ard.at(99, 390, 391) == doctest::Approx(0.1));
  CHECK(ard.at(100, 0, 391) == doctest::Approx(0.01));
  CHECK(ard.at(199, 0, 391) == doctest::Approx(0.01));
  const auto rslad = schedule("type = \"multistep\"\nmilestones = [215, 260, 285]", 0.1, 300);
  CHECK(rslad.at(214, 0, 1) == doctest::Approx(0.1));
  CHECK(rslad.at(215, 0, 1) == doctest::Approx(0.01));
  CHECK(rslad.at(260, 0, 1) == doctest::Approx(0.001));
  CHECK(rslad.at(299, 0, 1) == doctest::Approx(0.0001));
}

TEST_CASE("epoch_base = 1 reads milestones as codes that count epochs from 1") {
  // TRADES: `if epoch >= 75: lr = 0.01` over epochs 1..76, so 0-based epoch 74 is already 0.01.
  const auto trades =
      schedule("type = \"multistep\"\nepoch_base = 1\nmilestones = [75, 90, 100]", 0.1, 76);
  CHECK(trades.at(73, 390, 391) == doctest::Approx(0.1));
  CHECK(trades.at(74, 0, 391) == doctest::Approx(0.01));
  CHECK(trades.at(75, 390, 391) == doctest::Approx(0.01));
  // IAD's pre_train/AT.py: lr_schedule(epoch + 1) before every batch, constant within an epoch.
  const auto iad = schedule(
      "type = \"piecewise\"\nepoch_base = 1\nboundaries = [100.0, 150.0]\n"
      "values = [0.1, 0.01, 0.001]");
  CHECK(iad.at(98, 390, 391) == doctest::Approx(0.1));
  CHECK(iad.at(99, 0, 391) == doctest::Approx(0.01));
  CHECK(iad.at(148, 390, 391) == doctest::Approx(0.01));
  CHECK(iad.at(149, 0, 391) == doctest::Approx(0.001));
  // Warm-up still counts from the first epoch.
  const auto warm = schedule("type = \"constant\"\nepoch_base = 1\nwarmup_epochs = 4.0");
  CHECK(warm.at(0, 0, 10) == doctest::Approx(0.025));
  CHECK_THROWS_WITH_AS(schedule("epoch_base = 2"), doctest::Contains("epoch_base"), ardkit::Error);
}

TEST_CASE("piecewise per batch follows Rice et al.'s lr_schedule(epoch + (i + 1) / S)") {
  // 200 epochs: lr_max until 50%, /10 until 75%, /100 after.
  const auto rice = schedule(
      "type = \"piecewise\"\nper = \"batch\"\nboundaries = [100.0, 150.0]\n"
      "values = [0.1, 0.01, 0.001]");
  CHECK(rice.per_batch());
  CHECK(rice.at(99, 388, 391) == doctest::Approx(0.1));
  CHECK(rice.at(99, 390, 391) == doctest::Approx(0.01));  // t = 100 on the epoch's last batch
  CHECK(rice.at(120, 0, 391) == doctest::Approx(0.01));
  CHECK(rice.at(150, 0, 391) == doctest::Approx(0.001));
  // Per epoch, the same table changes at the epoch's start.
  const auto by_epoch =
      schedule("type = \"piecewise\"\nboundaries = [100.0, 150.0]\nvalues = [0.1, 0.01, 0.001]");
  CHECK(by_epoch.at(99, 390, 391) == doctest::Approx(0.1));
  CHECK(by_epoch.at(100, 0, 391) == doctest::Approx(0.01));
}

TEST_CASE("cosine decays from lr to min_lr and warm-up ramps any schedule linearly") {
  const auto cosine = schedule("type = \"cosine\"\nmin_lr = 0.001", 0.1, 10);
  CHECK(cosine.at(0, 0, 10) == doctest::Approx(0.1));
  CHECK(cosine.at(5, 0, 10) == doctest::Approx(0.0505));
  CHECK(cosine.at(9, 0, 10) > 0.001);
  const auto per_batch = schedule("type = \"cosine\"\nper = \"batch\"", 0.1, 10);
  CHECK(per_batch.at(9, 9, 10) == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(per_batch.at(4, 9, 10) == doctest::Approx(0.05));

  const auto warm =
      schedule("type = \"multistep\"\nmilestones = [5]\nwarmup_epochs = 2.0", 0.1, 10);
  CHECK(warm.at(0, 0, 10) == doctest::Approx(0.05));  // (epoch + 1) / 2
  CHECK(warm.at(1, 0, 10) == doctest::Approx(0.1));
  CHECK(warm.at(5, 0, 10) == doctest::Approx(0.01));
  const auto warm_batches =
      schedule("type = \"cosine\"\nper = \"batch\"\nwarmup_epochs = 1.0", 0.1, 11);
  CHECK(warm_batches.at(0, 4, 10) == doctest::Approx(0.05));  // 0.5 epochs into 1 of warm-up
  CHECK(warm_batches.at(0, 9, 10) == doctest::Approx(0.1));   // cosine starts after warm-up
}

TEST_CASE("bad schedules are config errors naming the key") {
  auto message = [](const std::string& text) {
    return test::error_of([&] { schedule(text); }, ardkit::ErrorKind::config);
  };
  CHECK(contains(message("type = \"piecewise\"\nboundaries = [1.0]\nvalues = [0.1]"),
                 "one more value than boundaries"));
  CHECK(contains(message("type = \"multistep\"\nmilestones = [5, 3]"), "increasing order"));
  CHECK(contains(message("type = \"cosine\"\nmin_lr = 0.5"), "exceeds [optimizer] lr"));
  CHECK(contains(test::error_of([&] { table(ardkit::schedule_schema(), "type = \"linear\""); },
                                ardkit::ErrorKind::config),
                 "type"));
}
