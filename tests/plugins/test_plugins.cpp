// Plugins that exist to exercise the host: a factory that throws, a hook that requests an
// interrupt after a given number of steps (as Ctrl-C would), an attack made of another
// plugin (any attack, with any `steps`), for the registry's part builder, an objective that
// uses every engine extension point (setup, its own module and buffers, a custom step), one
// with named teachers and a trained peer, and one that wraps another.
#include <ATen/CPUGeneratorImpl.h>
#include <csignal>

#include <ardkit/ardkit.hpp>
#include <ardkit/nn/batch_norm.hpp>

namespace {

class InterruptAfter : public ardkit::Hook {
 public:
  explicit InterruptAfter(int64_t steps) : steps_(steps) {}
  void on_step_end(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    if (event.step == steps_)
      std::raise(SIGINT);
  }

 private:
  int64_t steps_;
};

// `call_order`: counts every hook point and reports the counts at each epoch's end, with the
// validation accuracy on_validation_end saw and the step on_step_begin saw last, so a test can
// check which points run, how often and in which order.
class CallOrder : public ardkit::Hook {
 public:
  void on_epoch_begin(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    ++epoch_begins_;
    epoch_begin_step_ = event.step;
  }
  void on_step_begin(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    ++step_begins_;
    last_step_begin_ = event.step;  // steps completed before this one
  }
  void on_step_end(const ardkit::HookEvent&, ardkit::Knobs&) override {
    ++step_ends_;
  }
  void on_validation_end(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    ++validation_ends_;
    seen_val_ = event.metrics.at("val_clean_acc");
    ends_before_validation_ = epoch_ends_;
  }
  void on_epoch_end(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    ++epoch_ends_;
    auto& r = *event.report;
    r["epoch_begins"] = double(epoch_begins_);
    r["epoch_begin_step"] = double(epoch_begin_step_);
    r["step_begins"] = double(step_begins_);
    r["last_step_begin"] = double(last_step_begin_);
    r["step_ends"] = double(step_ends_);
    r["validation_ends"] = double(validation_ends_);
    r["epoch_ends_before_validation"] = double(ends_before_validation_);
    r["seen_val_clean_acc"] = seen_val_;
  }

 private:
  int64_t epoch_begins_ = 0, epoch_begin_step_ = -1, step_begins_ = 0, last_step_begin_ = -1,
          step_ends_ = 0, validation_ends_ = 0, epoch_ends_ = 0, ends_before_validation_ = -1;
  double seen_val_ = -1;
};

// A projection head on the student's features plus a per-sample memory (a buffer the size of
// the training set), as feature-distillation methods keep them.
struct HeadImpl : torch::nn::Module {
  HeadImpl(int64_t features, int64_t classes, int64_t samples)
      : linear(register_module("linear", torch::nn::Linear(features, classes))),
        seen(register_buffer("seen", torch::zeros({samples}))),
        updates(register_buffer("updates", torch::zeros({1}))) {}
  torch::nn::Linear linear;
  torch::Tensor seen;     // how often each training sample was in a batch
  torch::Tensor updates;  // optimizer steps taken
};
TORCH_MODULE(Head);

// `fixed_linear`: a pretrained-looking linear classifier with any number of classes (a fixed
// seed), a teacher from "another task" for the label-space checks.
class FixedLinear : public ardkit::Model {
 public:
  FixedLinear(const ardkit::DataSpec& d, int64_t classes)
      : fc_(register_module("fc", torch::nn::Linear(d.channels * d.height * d.width, classes))) {
    torch::NoGradGuard no_grad;
    auto generator = at::detail::createCPUGenerator(7);
    fc_->weight.copy_(at::normal(0.0, 0.1, fc_->weight.sizes(), generator));
  }
  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    const auto h = x.flatten(1);
    return {fc_(h), h};
  }
  int64_t feature_dim() const override {
    return fc_->weight.size(1);
  }
  bool pretrained() const override {
    return true;
  }

 private:
  torch::nn::Linear fc_;
};

// `train_forbidden`: 16x16 test images whose training (and validation) split must never be
// touched: building it with its training split, or asking for either split's size or samples,
// throws. A data-free run must train on it without noticing.
class TrainForbidden : public ardkit::DataSource {
 public:
  explicit TrainForbidden(const ardkit::BuildContext& context) {
    if (context.train_split)
      throw std::runtime_error("train_forbidden was built to serve its training split");
    auto generator = at::detail::createCPUGenerator(11);
    x_ = at::rand({64, 1, 16, 16}, generator);
    y_ = at::randint(10, {64}, generator);
  }
  ardkit::DataSpec spec() const override {
    ardkit::DataSpec spec;
    spec.channels = 1;
    spec.height = spec.width = 16;
    spec.num_classes = 10;
    spec.name = "train_forbidden";
    return spec;
  }
  int64_t size(ardkit::Split split) const override {
    forbid(split);
    return x_.size(0);
  }
  ardkit::Batch get(ardkit::Split split, const torch::Tensor& indices,
                    ardkit::Augmentation) override {
    forbid(split);
    return {x_.index_select(0, indices), y_.index_select(0, indices), indices};
  }

 private:
  static void forbid(ardkit::Split split) {
    if (split != ardkit::Split::test)
      throw std::runtime_error(std::string("train_forbidden: the ") + ardkit::split_name(split) +
                               " split was accessed");
  }
  torch::Tensor x_, y_;
};

// `bn_teacher`: a fixed conv (ardkit BatchNorm, running statistics set away from 0/1) -> pool ->
// linear classifier, a pretrained-looking teacher with BatchNorm taps for the data-free tests.
class BnTeacher : public ardkit::Model {
 public:
  explicit BnTeacher(const ardkit::DataSpec& d)
      : conv_(register_module(
            "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(d.channels, 8, 3).padding(1)))),
        bn_(register_module("bn", ardkit::nn::BatchNorm2d(8))),
        fc_(register_module("fc", torch::nn::Linear(8 * (d.height / 4) * (d.width / 4), 10))) {
    torch::NoGradGuard no_grad;
    auto generator = at::detail::createCPUGenerator(5);
    for (auto& p : parameters())
      p.copy_(at::normal(0.0, 0.3, p.sizes(), generator));
    bn_->running_mean.copy_(at::normal(0.0, 0.2, {8}, generator));
    bn_->running_var.copy_(at::rand({8}, generator) + 0.5);
  }
  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    auto h = torch::avg_pool2d(torch::relu(bn_(conv_(x))), 2);
    tap("block", h);
    h = torch::avg_pool2d(h, 2).flatten(1);
    return {fc_(h), h};
  }
  int64_t feature_dim() const override {
    return fc_->weight.size(1);
  }
  std::vector<std::string> tap_names() const override {
    return {"block"};
  }
  bool pretrained() const override {
    return true;
  }

 private:
  torch::nn::Conv2d conv_;
  ardkit::nn::BatchNorm2d bn_;
  torch::nn::Linear fc_;
};

// `probe_objective`: cross-entropy on the student's logits and on a head over its features,
// `updates_per_batch` optimizer steps per batch. Its terms report what the engine told it.
class ProbeObjective : public ardkit::Objective {
 public:
  explicit ProbeObjective(int64_t updates) : updates_per_batch_(updates) {}
  void setup(const ardkit::ObjectiveSetup& s) override {
    info_ = s;
    head_ = Head(s.student_features, s.num_classes, s.train_size);
    head_->to(s.device);
  }
  std::shared_ptr<torch::nn::Module> trainable() override {
    return head_.ptr();
  }
  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto out = c.student.forward(c.batch.x);
    const auto head_logits = head_->linear(out.features);
    const auto total = torch::nn::functional::cross_entropy(out.logits, c.batch.y) +
                       torch::nn::functional::cross_entropy(head_logits, c.batch.y);
    const auto constant = [&](double v) { return torch::tensor(v); };
    return {total,
            {{"setup_train_size", constant(static_cast<double>(info_.train_size))},
             {"setup_student_features", constant(static_cast<double>(info_.student_features))},
             {"setup_student_classes", constant(static_cast<double>(info_.student_classes))},
             {"setup_teacher_classes", constant(static_cast<double>(info_.teacher_classes))},
             {"head_training", constant(head_->is_training() ? 1.0 : 0.0)},
             {"head_weight_sum", head_->linear->weight.sum().detach()},
             {"updates", head_->updates.clone()}}};
  }
  ardkit::LossTerms step(ardkit::StepContext& c) override {
    {
      torch::NoGradGuard no_grad;
      head_->seen.index_add_(0, c.batch.index, torch::ones({c.batch.index.size(0)}));
    }
    ardkit::LossTerms loss;
    for (int64_t i = 0; i < updates_per_batch_; ++i) {
      loss = Objective::step(c);  // the default step, several times
      torch::NoGradGuard no_grad;
      head_->updates += 1;
    }
    return loss;
  }

 private:
  int64_t updates_per_batch_;
  ardkit::ObjectiveSetup info_;
  Head head_{nullptr};
};

}  // namespace

// `two_teachers_and_peer`: the model roles. Two frozen teachers ([teachers.clean],
// [teachers.robust]) and a peer ([companions.peer]) that this objective trains with the peer's
// own optimizer (CE on the batch, before the student's step); the student learns CE plus KL to
// the mean of the three models' probabilities.
class TwoTeachersAndPeer : public ardkit::Objective {
 public:
  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto logits = c.student.forward(c.batch.x).logits;
    torch::Tensor target;
    {
      torch::NoGradGuard no_grad;
      const auto p = [&](ardkit::Model& m) {
        return torch::softmax(m.forward(c.batch.x).logits, 1);
      };
      target =
          (p(c.teacher_named("clean")) + p(c.teacher_named("robust")) + p(c.companion("peer"))) / 3;
    }
    namespace F = torch::nn::functional;
    const auto ce = F::cross_entropy(logits, c.batch.y);
    const auto kl = F::kl_div(torch::log_softmax(logits, 1), target,
                              F::KLDivFuncOptions().reduction(torch::kBatchMean));
    return {ce + kl, {{"ce", ce.detach()}, {"kl", kl.detach()}}};
  }
  ardkit::LossTerms step(ardkit::StepContext& c) override {
    ardkit::Model& peer = c.companion("peer");
    torch::optim::Optimizer& optimizer = c.companion_optimizer("peer");
    optimizer.zero_grad();
    const auto peer_loss =
        torch::nn::functional::cross_entropy(peer.forward(c.batch.x).logits, c.batch.y);
    peer_loss.backward();
    optimizer.step();
    ardkit::LossTerms loss = Objective::step(c);
    loss.terms.emplace_back("peer_ce", peer_loss.detach());
    loss.terms.emplace_back("peer_training", torch::tensor(peer.is_training() ? 1.0 : 0.0));
    loss.terms.emplace_back("peer_lr",
                            torch::tensor(optimizer.param_groups()[0].options().get_lr()));
    return loss;
  }
};

// `plus_weight_norm`: an objective made of another ([objective.wrapped], any objective) that
// adds `weight` x the squared norm of the student's parameters to each of its losses, through
// StepContext::extra_terms, so that an inner objective's custom step keeps working. Its state is
// the inner one's plus a count of its steps.
class PlusWeightNorm : public ardkit::Objective {
 public:
  PlusWeightNorm(double weight, ardkit::ObjectivePtr inner)
      : weight_(weight), inner_(std::move(inner)) {}
  void setup(const ardkit::ObjectiveSetup& s) override {
    inner_->setup(s);
  }
  void declare_knobs(ardkit::Knobs& knobs) override {
    inner_->declare_knobs(knobs);
  }
  std::shared_ptr<torch::nn::Module> trainable() override {
    return inner_->trainable();
  }
  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    return inner_->compute(c);
  }
  ardkit::LossTerms step(ardkit::StepContext& c) override {
    const auto outer = c.extra_terms;
    c.extra_terms = [&](ardkit::LossTerms& loss) {
      if (outer)
        outer(loss);
      torch::Tensor norm = torch::zeros({});
      for (const auto& p : c.student.parameters())
        norm = norm + p.pow(2).sum();
      loss.total = loss.total + weight_ * norm;
      loss.terms.emplace_back("weight_norm", norm.detach());
    };
    ardkit::LossTerms loss = inner_->step(c);
    c.extra_terms = outer;
    steps_ += 1;
    loss.terms.emplace_back("wrapper_steps", torch::tensor(static_cast<double>(steps_)));
    return loss;
  }
  bool has_state() override {
    return true;
  }
  void save_state(torch::serialize::OutputArchive& archive) override {
    archive.write("steps", torch::tensor(steps_));
    if (inner_->has_state()) {
      torch::serialize::OutputArchive inner;
      inner_->save_state(inner);
      archive.write("inner", inner);
    }
  }
  void load_state(torch::serialize::InputArchive& archive) override {
    torch::Tensor steps;
    archive.read("steps", steps);
    steps_ = steps.item<int64_t>();
    if (inner_->has_state()) {
      torch::serialize::InputArchive inner;
      archive.read("inner", inner);
      inner_->load_state(inner);
    }
  }

 private:
  double weight_;
  ardkit::ObjectivePtr inner_;
  int64_t steps_ = 0;
};

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::model, "fixed_linear", "0",
               "a fixed linear classifier with `classes` outputs",
               {ardkit::param::integer("classes", 10).at_least(1)},
               [](const ardkit::Params& p, const ardkit::BuildContext& context) {
                 return std::make_shared<FixedLinear>(context.data, p.get_int("classes"));
               });
  manifest.add(ardkit::PluginKind::data, "train_forbidden", "0",
               "test images only: any access to the training split throws", {},
               [](const ardkit::Params&, const ardkit::BuildContext& context) {
                 return std::make_shared<TrainForbidden>(context);
               });
  manifest.add(ardkit::PluginKind::model, "bn_teacher", "0",
               "a fixed conv-BatchNorm-linear classifier (BatchNorm taps)", {},
               [](const ardkit::Params&, const ardkit::BuildContext& context) {
                 return std::make_shared<BnTeacher>(context.data);
               });
  manifest.add(ardkit::PluginKind::objective, "probe_objective", "0",
               "CE on logits and on a head over the features; reports what setup() saw",
               {ardkit::param::integer("updates_per_batch", 1).at_least(1)},
               [](const ardkit::Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<ProbeObjective>(p.get_int("updates_per_batch"));
               });
  manifest.add(
      ardkit::PluginKind::model, "failing", "0", "a model whose factory throws", {},
      [](const ardkit::Params&, const ardkit::BuildContext&) -> std::shared_ptr<ardkit::Component> {
        throw std::runtime_error("deliberate failure");
      });
  manifest.add(ardkit::PluginKind::attack, "composite", "0", "builds the attack `part`",
               {ardkit::param::string("part", "pgd"), ardkit::param::integer("steps", 1)},
               [](const ardkit::Params& p, const ardkit::BuildContext& context) {
                 ardkit::Params values(p.where());
                 values.set("steps", p.get_int("steps"));
                 return context.build_as<ardkit::Attack>(ardkit::PluginKind::attack,
                                                         p.get_string("part"), values);
               });
  manifest
      .add(ardkit::PluginKind::objective, "two_teachers_and_peer", "0",
           "CE + KL to the mean of two named teachers and a peer it trains", {},
           [](const ardkit::Params&, const ardkit::BuildContext&) {
             return std::make_shared<TwoTeachersAndPeer>();
           })
      .uses({"teachers.clean", "teachers.robust", "companions.peer"});
  manifest
      .add(ardkit::PluginKind::objective, "plus_weight_norm", "0",
           "the [objective.wrapped] objective plus weight x the student's squared weight norm",
           {ardkit::param::real("weight", 1e-4).at_least(0)},
           [](const ardkit::Params& p, const ardkit::BuildContext& context) {
             return std::make_shared<PlusWeightNorm>(p.get_real("weight"),
                                                     context.build_wrapped<ardkit::Objective>());
           })
      .wraps(ardkit::PluginKind::objective);
  manifest.add(ardkit::PluginKind::hook, "call_order", "0",
               "counts every hook point and reports the counts at each epoch's end", {},
               [](const ardkit::Params&, const ardkit::BuildContext&) {
                 return std::make_shared<CallOrder>();
               });
  manifest.add(ardkit::PluginKind::hook, "interrupt_after", "0", "raises SIGINT after `step` steps",
               {ardkit::param::integer("step", 1).at_least(1)},
               [](const ardkit::Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<InterruptAfter>(p.get_int("step"));
               });
}
