#include "ardkit/in_memory_data.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "ardkit/error.hpp"

namespace ardkit {

void add_split_params(ParamSchema& schema, int64_t default_validation) {
  schema.push_back(
      param::integer("validation", default_validation)
          .at_least(0)
          .help("training samples held out as the validation split (model selection)"));
  schema.push_back(
      param::integer("split_seed", 0).at_least(0).help("seed of the train/validation split"));
  schema.push_back(param::integer("train_subset", 0)
                       .at_least(0)
                       .help("use only the first N training samples after the split; 0 = all"));
  schema.push_back(param::integer("test_subset", 0)
                       .at_least(0)
                       .help("use only the first N test samples; 0 = all"));
}

SplitOptions split_options_from(const Params& p) {
  return {p.get_int("validation"), p.get_int("split_seed"), p.get_int("train_subset"),
          p.get_int("test_subset")};
}

void add_augment_params(ParamSchema& schema) {
  schema.push_back(
      param::integer("crop_padding", 0)
          .at_least(0)
          .help("training augmentation: random crop after zero padding by N pixels; 0 = off"));
  schema.push_back(param::boolean("horizontal_flip", false)
                       .help("training augmentation: random horizontal flip"));
}

AugmentOptions augment_options_from(const Params& p) {
  return {p.get_int("crop_padding"), p.get_bool("horizontal_flip")};
}

torch::Tensor augment(const torch::Tensor& x, const AugmentOptions& options) {
  torch::Tensor out = x;
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (options.crop_padding > 0) {
    const int64_t p = options.crop_padding;
    const auto padded = torch::constant_pad_nd(x, {p, p, p, p}, 0.0);
    const auto offsets = torch::randint(0, 2 * p + 1, {n, 2}, torch::kLong);
    out = torch::empty_like(x);
    const auto acc = offsets.accessor<int64_t, 2>();
    for (int64_t i = 0; i < n; ++i)
      out[i].copy_(padded[i].narrow(1, acc[i][0], h).narrow(2, acc[i][1], w));
  }
  if (options.horizontal_flip) {
    const auto flip = torch::rand({n}) < 0.5;
    out = torch::where(flip.view({n, 1, 1, 1}), out.flip({3}), out);
  }
  return out;
}

InMemoryData::InMemoryData(DataSpec spec, torch::Tensor train_x, torch::Tensor train_y,
                           torch::Tensor test_x, torch::Tensor test_y, const SplitOptions& split,
                           const AugmentOptions& augment)
    : spec_(std::move(spec)), augment_(augment) {
  const int64_t n = train_x.size(0);
  if (split.validation >= n)
    throw_config_error(
        fmt::format("[data] validation = {} leaves no training samples (the training set has {}); "
                    "use a smaller validation",
                    split.validation, n));
  auto generator =
      at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(split.split_seed) + 7919ull);
  const auto order = torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong));
  auto val_idx = std::get<0>(order.slice(0, 0, split.validation).sort());
  auto train_idx =
      std::get<0>(order.slice(0, split.validation, n).sort());  // keep file order within a split
  if (split.train_subset > 0)
    train_idx = train_idx.slice(0, 0, std::min(split.train_subset, train_idx.size(0)));
  if (split.test_subset > 0) {
    test_x = test_x.slice(0, 0, std::min(split.test_subset, test_x.size(0)));
    test_y = test_y.slice(0, 0, std::min(split.test_subset, test_y.size(0)));
  }
  x_[0] = train_x.index_select(0, train_idx).contiguous();
  y_[0] = train_y.index_select(0, train_idx).contiguous();
  x_[1] = train_x.index_select(0, val_idx).contiguous();
  y_[1] = train_y.index_select(0, val_idx).contiguous();
  x_[2] = test_x.contiguous();
  y_[2] = test_y.to(torch::kLong).contiguous();
  y_[0] = y_[0].to(torch::kLong);
  y_[1] = y_[1].to(torch::kLong);
}

int64_t InMemoryData::size(Split split) const {
  return y_[static_cast<int>(split)].size(0);
}

Batch InMemoryData::get(Split split, const torch::Tensor& indices, bool do_augment) {
  const int s = static_cast<int>(split);
  auto x = x_[s].index_select(0, indices);
  x = x.scalar_type() == torch::kByte ? x.to(torch::kFloat).div_(255.0) : x.to(torch::kFloat);
  if (do_augment && split == Split::train)
    x = augment(x, augment_);
  return {x, y_[s].index_select(0, indices), indices};
}

}  // namespace ardkit
