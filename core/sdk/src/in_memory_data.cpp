#include "ardkit/in_memory_data.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
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
                       .help("use only N training samples after the split; 0 = all"));
  schema.push_back(
      param::integer("test_subset", 0).at_least(0).help("use only N test samples; 0 = all"));
  schema.push_back(param::string("subset", "first")
                       .one_of({"first", "stratified"})
                       .help("subsets take the first N samples, or N/classes of each class"));
  schema.push_back(param::integer_list("class_map", {})
                       .at_least(-1)
                       .help("relabel: class l becomes class_map[l], -1 drops it (one entry per "
                             "class of the files; [] = as is)"));
}

SplitOptions split_options_from(const Params& p) {
  SplitOptions o;
  o.validation = p.get_int("validation");
  o.split_seed = p.get_int("split_seed");
  o.train_subset = p.get_int("train_subset");
  o.test_subset = p.get_int("test_subset");
  o.stratified = p.get_string("subset") == "stratified";
  o.class_map = p.get_int_list("class_map");
  o.where = p.origin("class_map");
  return o;
}

void add_augment_params(ParamSchema& schema, int64_t crop_padding, bool horizontal_flip) {
  schema.push_back(
      param::integer("crop_padding", crop_padding)
          .at_least(0)
          .help("training augmentation: random crop after zero padding by N pixels; 0 = off"));
  schema.push_back(param::boolean("horizontal_flip", horizontal_flip)
                       .help("training augmentation: random horizontal flip"));
}

AugmentOptions augment_options_from(const Params& p) {
  return {p.get_int("crop_padding"), p.get_bool("horizontal_flip")};
}

torch::Tensor augment(const torch::Tensor& x, const AugmentOptions& options,
                      at::Generator generator) {
  torch::Tensor out = x;
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (options.crop_padding > 0) {
    const int64_t p = options.crop_padding;
    const auto padded = torch::constant_pad_nd(x, {p, p, p, p}, 0.0);
    const auto offsets = torch::randint(0, 2 * p + 1, {n, 2}, generator, torch::kLong);
    out = torch::empty_like(x);
    const auto acc = offsets.accessor<int64_t, 2>();
    for (int64_t i = 0; i < n; ++i)
      out[i].copy_(padded[i].narrow(1, acc[i][0], h).narrow(2, acc[i][1], w));
  }
  if (options.horizontal_flip) {
    const auto flip = torch::rand({n}, generator) < 0.5;
    out = torch::where(flip.view({n, 1, 1, 1}), out.flip({3}), out);
  }
  return out;
}

namespace {

// Positions (sorted, so file order is kept) of `count` samples among `positions`: the first ones,
// or an equal share of each class (earlier classes take the remainder; a short class gives all).
torch::Tensor subset_of(const torch::Tensor& positions, const torch::Tensor& labels, int64_t count,
                        bool stratified, int64_t classes) {
  if (count <= 0 || count >= positions.size(0))
    return positions;
  if (!stratified)
    return positions.slice(0, 0, count);
  std::vector<torch::Tensor> parts;
  const auto y = labels.index_select(0, positions);
  for (int64_t c = 0; c < classes; ++c) {
    const int64_t quota = count / classes + (c < count % classes ? 1 : 0);
    const auto of_class = positions.masked_select(y.eq(c));
    parts.push_back(of_class.slice(0, 0, std::min(quota, of_class.size(0))));
  }
  return std::get<0>(torch::cat(parts).sort());
}

}  // namespace

InMemoryData::InMemoryData(DataSpec spec, torch::Tensor train_x, torch::Tensor train_y,
                           torch::Tensor test_x, torch::Tensor test_y, const SplitOptions& split,
                           const AugmentOptions& augment)
    : spec_(std::move(spec)), augment_(augment), withheld_(!train_x.defined()) {
  if (withheld_) {  // built for a data-free run: an empty training split
    train_x = test_x.narrow(0, 0, 0);
    train_y = test_y.narrow(0, 0, 0);
  }
  train_y = train_y.to(torch::kLong);
  test_y = test_y.to(torch::kLong);
  if (!split.class_map.empty()) {
    // Cross-task experiments: merge, reorder or drop classes before anything else.
    if (static_cast<int64_t>(split.class_map.size()) != spec_.num_classes)
      throw_config_error(fmt::format(
          "{}: class_map has {} entries but the data has {} classes; give one new label (or -1 "
          "to drop) per class",
          split.where, split.class_map.size(), spec_.num_classes));
    // Merging or reordering never needs more new classes than there are old ones; a larger
    // label is a typo that would size every model's output layer by it.
    for (const int64_t label : split.class_map)
      if (label >= static_cast<int64_t>(split.class_map.size()))
        throw_config_error(fmt::format(
            "{}: class_map value {} is too large: new labels run from 0 to {} (one per entry at "
            "most), or -1 to drop a class",
            split.where, label, split.class_map.size() - 1));
    const auto map = torch::tensor(split.class_map, torch::kLong);
    auto relabel = [&](torch::Tensor& x, torch::Tensor& y) {
      const auto mapped = map.index_select(0, y);
      const auto keep = mapped.ge(0).nonzero().squeeze(1);
      x = x.index_select(0, keep);
      y = mapped.index_select(0, keep);
    };
    relabel(train_x, train_y);
    relabel(test_x, test_y);
    spec_.num_classes = *std::max_element(split.class_map.begin(), split.class_map.end()) + 1;
    spec_.label_space =
        fmt::format("{} class_map=[{}]", spec_.name, fmt::join(split.class_map, ","));
    if (spec_.num_classes < 2)
      throw_config_error(split.where + ": class_map keeps fewer than two classes");
  }
  const int64_t n = train_x.size(0);
  const int64_t validation = withheld_ ? 0 : split.validation;
  if (validation > 0 && validation >= n)
    throw_config_error(
        fmt::format("[data] validation = {} leaves no training samples (the training set has {}); "
                    "use a smaller validation",
                    validation, n));
  auto generator =
      at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(split.split_seed) + 7919ull);
  const auto order = torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong));
  auto val_idx = std::get<0>(order.slice(0, 0, validation).sort());
  auto train_idx =
      std::get<0>(order.slice(0, validation, n).sort());  // keep file order within a split
  train_idx =
      subset_of(train_idx, train_y, split.train_subset, split.stratified, spec_.num_classes);
  const auto test_idx = subset_of(torch::arange(test_x.size(0), torch::kLong), test_y,
                                  split.test_subset, split.stratified, spec_.num_classes);
  x_[0] = train_x.index_select(0, train_idx).contiguous();
  y_[0] = train_y.index_select(0, train_idx).contiguous();
  x_[1] = train_x.index_select(0, val_idx).contiguous();
  y_[1] = train_y.index_select(0, val_idx).contiguous();
  x_[2] = test_x.index_select(0, test_idx).contiguous();
  y_[2] = test_y.index_select(0, test_idx).contiguous();
}

int64_t InMemoryData::size(Split split) const {
  return y_[static_cast<int>(split)].size(0);
}

Batch InMemoryData::get(Split split, const torch::Tensor& indices, Augmentation augmentation) {
  if (withheld_ && split != Split::test)
    throw_runtime_error(fmt::format(
        "[data] {} split requested, but this data source was built without its training files "
        "(a data-free run reads no training-set image; set [generator] real_validation = true "
        "to select checkpoints on real data)",
        split_name(split)));
  const int s = static_cast<int>(split);
  auto x = x_[s].index_select(0, indices);
  x = x.scalar_type() == torch::kByte ? x.to(torch::kFloat).div_(255.0) : x.to(torch::kFloat);
  if (augmentation.enabled && split == Split::train)
    x = augment(x, augment_, at::make_generator<at::CPUGeneratorImpl>(augmentation.seed));
  return {x, y_[s].index_select(0, indices), indices};
}

}  // namespace ardkit
