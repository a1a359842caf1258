// Objective plugin `gacd`: Guided Adversarial Contrastive Distillation, after Bai, Chen, Zhao,
// Wen, Jiang, Kot, "Feature Distillation With Guided Adversarial Contrastive Learning"
// (arXiv 2009.09922). Neither the paper's method section nor code is public; what is known is
// its abstract: robustness passes teacher -> student through FEATURES, as contrastive learning
// tied to mutual information, with the robust teacher's features as the anchor the student's
// must match, "sample reweighted estimation" against the teacher's mistakes, and transfer across
// models and tasks. This plugin is a documented re-derivation on CRD's machinery (Tian et al.,
// ICLR 2020; HobbitLong/RepDistiller@b84f547c crd/), NOT a reproduction; every open choice is a
// parameter, its default argued in docs/methods.md "GACD":
//
//   v_t   = normalize(W_t f_T(x))        teacher anchor: the frozen teacher's clean features
//                                        (penultimate, or a tapped layer: teacher_layer)
//   x'    = [attack] maximizing the guide (default: the student's contrastive loss against the
//           teacher anchors, student in eval mode): adversarial examples guided by the teacher
//   v_s   = normalize(W_s f_S(x'))       positive: the student's features of the same sample's x'
//   l_i   = contrastive loss of sample i: "infonce" (the batch's other anchors are negatives) or
//           "crd" (CRD's NCE with K negatives from momentum memory banks), optionally both
//           directions (student- and teacher-anchored)
//   w_i   = teacher confidence in y_i on x ("prob", "power", "correct"), mean 1 per batch
//   L     = contrastive_weight * mean_i w_i l_i + ce_weight * CE(S(x'), y)
//           + kl_weight * T^2 * KL(p_T^T(x) || p_S^T(x'))          (batchmean)
//
// W_s, W_t (linear heads, `feature_dim` wide) and the memory banks are the objective's
// trainable() module: their own optimizer group, saved in checkpoints, bit-exact on resume.
// Only features pass between the models, so the teacher may come from another task; reweighting,
// the KL term and guide = "kl" read its class probabilities and are refused then.
#include <fmt/format.h>

#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;
namespace F = torch::nn::functional;

torch::Tensor embed(torch::nn::Linear& head, const torch::Tensor& features) {
  return F::normalize(head(features), F::NormalizeFuncOptions().dim(1));
}

// The representation a head embeds: the model's penultimate features, or a tapped layer
// (feature maps [B, C, H, W] average-pooled to [B, C], as the penultimate features are).
torch::Tensor representation(ardkit::Model& model, const ardkit::ModelOutput& out,
                             const std::string& layer) {
  if (layer.empty())
    return out.features;
  const auto& t = model.tapped(layer);
  return t.dim() > 2 ? torch::adaptive_avg_pool2d(t, {1, 1}).flatten(1) : t.flatten(1);
}

// Asks `model` for `layer` and returns the width its head will see.
int64_t tapped_width(ardkit::Model& model, const std::string& layer, const ardkit::DataSpec& d,
                     torch::Device device) {
  model.set_taps({layer});
  torch::NoGradGuard no_grad;
  ardkit::BnModeGuard eval_mode(model, ardkit::BnMode::eval);
  const auto out = model.forward(torch::zeros({1, d.channels, d.height, d.width}, device));
  return representation(model, out, layer).size(1);
}

// The heads and CRD's memory banks (registered buffers, so checkpoints carry them).
struct GacdStateImpl : torch::nn::Module {
  GacdStateImpl(int64_t student_features, int64_t teacher_features, int64_t dim, int64_t samples,
                bool banks)
      : embed_s(register_module("embed_s", torch::nn::Linear(student_features, dim))),
        embed_t(register_module("embed_t", torch::nn::Linear(teacher_features, dim))) {
    if (!banks)
      return;
    // CRD's ContrastMemory: uniform in [-stdv, stdv], stdv = 1/sqrt(dim/3); Z not yet known (-1).
    const double stdv = 1.0 / std::sqrt(static_cast<double>(dim) / 3.0);
    memory_s = register_buffer("memory_s", torch::rand({samples, dim}) * (2 * stdv) - stdv);
    memory_t = register_buffer("memory_t", torch::rand({samples, dim}) * (2 * stdv) - stdv);
    z_s = register_buffer("z_s", torch::full({1}, -1.0));
    z_t = register_buffer("z_t", torch::full({1}, -1.0));
  }
  torch::nn::Linear embed_s, embed_t;
  torch::Tensor memory_s, memory_t, z_s, z_t;
};
TORCH_MODULE(GacdState);

class Gacd : public ardkit::Objective {
 public:
  explicit Gacd(const Params& p)
      : where_(p.where()),
        estimator_origin_(p.origin("estimator")),
        reweight_origin_(p.origin("reweight")),
        guide_origin_(p.origin("guide")),
        kl_origin_(p.origin("kl_weight")),
        negatives_origin_(p.origin("negatives_from")),
        origins_{{"student_layer", p.origin("student_layer")},
                 {"teacher_layer", p.origin("teacher_layer")}},
        crd_(p.get_string("estimator") == "crd"),
        other_classes_(p.get_string("negatives_from") == "other_classes"),
        symmetric_(p.get_bool("symmetric")),
        guide_(p.get_string("guide")),
        student_layer_(p.get_string("student_layer")),
        teacher_layer_(p.get_string("teacher_layer")),
        reweight_(p.get_string("reweight")),
        dim_(p.get_int("feature_dim")),
        negatives_(p.get_int("negatives")),
        tau_(p.get_real("temperature")),
        momentum_(p.get_real("momentum")),
        power_(p.get_real("reweight_power")),
        contrastive_weight_(p.get_real("contrastive_weight")),
        ce_weight_(p.get_real("ce_weight")),
        kl_weight_(p.get_real("kl_weight")),
        kl_temperature_(p.get_real("kl_temperature")),
        bn_mode_(distill::bn_mode(p)) {}

  void setup(const ardkit::ObjectiveSetup& s) override {
    // CRD's positive is the sample's own memory entry from earlier epochs: synthetic batches are
    // new images every step, so that entry would be another image's embedding.
    if (crd_ && s.synthetic)
      ardkit::throw_config_error(fmt::format(
          "{}{} estimator = \"crd\" keeps a memory bank entry per training sample, but a "
          "[generator] run's batches are new images every step, so its positives would be other "
          "images: use estimator = \"infonce\" (in-batch negatives) or real training data",
          estimator_origin_ == where_ ? "" : estimator_origin_ + ": ", where_));
    // Reading the teacher's class probabilities needs one label space; features do not.
    if (!s.same_label_space()) {
      const auto refuse = [&](const std::string& origin, const std::string& what) {
        // origin is where_ itself when the key took its default
        ardkit::throw_config_error(fmt::format(
            "{}{} {} reads the teacher's class probabilities, but the teacher's labels ({} "
            "classes of '{}') are not the data's ({} of '{}'): set it to {}",
            origin == where_ ? "" : origin + ": ", where_, what, s.teacher_classes,
            s.teacher_label_space, s.num_classes, s.label_space,
            what.rfind("reweight", 0) == 0 ? "\"none\""
            : what.rfind("guide", 0) == 0  ? "\"contrastive\" or \"ce\""
                                           : "0"));
      };
      if (reweight_ != "none")
        refuse(reweight_origin_, "reweight = \"" + reweight_ + "\"");
      if (guide_ == "kl")
        refuse(guide_origin_, "guide = \"kl\"");
      if (kl_weight_ > 0)
        refuse(kl_origin_, "kl_weight > 0");
    }
    samples_ = s.train_size;
    int64_t student_width = s.student_features, teacher_width = s.teacher_features;
    const auto width = [&](ardkit::Model& model, const std::string& key, const std::string& layer) {
      try {
        return tapped_width(model, layer, s.data, s.device);
      } catch (const ardkit::Error& e) {  // say which key of which file names the layer
        ardkit::throw_config_error(
            fmt::format("{}: {} {}: {}", origins_.at(key), where_, key, e.what()));
      }
    };
    if (!student_layer_.empty())
      student_width = width(*s.student, "student_layer", student_layer_);
    if (!teacher_layer_.empty())
      teacher_width = width(*s.teacher, "teacher_layer", teacher_layer_);
    state_ = GacdState(student_width, teacher_width, dim_, samples_, crd_);
    state_->to(s.device);
    if (crd_ && other_classes_)
      index_classes(s);
  }

  std::shared_ptr<torch::nn::Module> trainable() override {
    return state_.ptr();
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    if (!state_)
      ardkit::throw_runtime_error("gacd: compute() before setup(): the engine calls setup first");
    const auto& x = c.batch.x;
    const auto& y = c.batch.y;
    const int64_t b = x.size(0);
    ardkit::ModelOutput teacher;
    {
      torch::NoGradGuard no_grad;
      teacher = c.teacher->forward(x);
      if (!teacher_layer_.empty())
        teacher.features = representation(*c.teacher, teacher, teacher_layer_);
    }
    const auto v_t = embed(state_->embed_t, teacher.features);
    const auto x_adv = attack(c, v_t.detach(), teacher.logits);
    const auto student = c.student.forward(x_adv);
    const auto v_s = embed(state_->embed_s, representation(c.student, student, student_layer_));
    const auto w = weights(teacher.logits, y);
    const auto per_sample = crd_ ? crd(v_s, v_t, c.batch.index) : infonce(v_s, v_t);
    const auto contrastive = (w * per_sample).sum() / static_cast<double>(b);
    std::vector<std::pair<std::string, torch::Tensor>> terms = {{"contrastive", contrastive},
                                                                {"mean_w", w.mean()}};
    auto loss = contrastive_weight_ * contrastive;
    if (ce_weight_ > 0) {
      const auto ce = F::cross_entropy(student.logits, y);
      loss = loss + ce_weight_ * ce;
      terms.emplace_back("adv_ce", ce);
    }
    if (kl_weight_ > 0) {
      const double t = kl_temperature_;
      const auto kl =
          distill::kl_rows(torch::softmax(teacher.logits / t, 1), student.logits, t).sum() /
          static_cast<double>(b);
      loss = loss + kl_weight_ * t * t * kl;
      terms.emplace_back("kl", kl);
    }
    return {loss, terms};
  }

 private:
  // x' from the [attack] plugin maximizing the guide.
  torch::Tensor attack(ardkit::StepContext& c, const torch::Tensor& anchors,
                       const torch::Tensor& teacher_logits) {
    if (guide_ == "ce")
      return distill::attack_student(c, bn_mode_, ardkit::losses::cross_entropy());
    if (guide_ == "kl")
      return distill::attack_student(c, bn_mode_,
                                     ardkit::losses::kl_to(torch::softmax(teacher_logits, 1)));
    // The student's in-batch contrastive loss of each attacked sample against all the teacher's
    // anchors; `rows` are the samples' positions in the batch, so their own anchors are the
    // positives. The memory banks stay out of the attack: it must not move them.
    ardkit::Model& student = c.student;
    ardkit::AttackTarget target;
    target.model = &student;
    target.bn_mode = bn_mode_;
    target.objective = [&, anchors](const torch::Tensor& x_adv, const torch::Tensor&,
                                    const torch::Tensor& rows) {
      const auto v =
          embed(state_->embed_s, representation(student, student.forward(x_adv), student_layer_));
      return F::cross_entropy(torch::mm(v, anchors.t()) / tau_, rows,
                              F::CrossEntropyFuncOptions().reduction(torch::kNone));
    };
    return c.attack->perturb(target, c.batch.x, c.batch.y);
  }

  // w_i from the teacher's probability of the true class on the clean input, mean 1 per batch.
  torch::Tensor weights(const torch::Tensor& teacher_logits, const torch::Tensor& y) const {
    const int64_t b = y.size(0);
    if (reweight_ == "none")
      return torch::ones({b}, teacher_logits.options());
    torch::Tensor w;
    if (reweight_ == "correct") {
      w = teacher_logits.argmax(1).eq(y).to(teacher_logits.dtype());
    } else {
      w = torch::softmax(teacher_logits, 1).gather(1, y.unsqueeze(1)).squeeze(1);
      if (reweight_ == "power")
        w = w.pow(power_);
    }
    const auto mean = w.mean();
    // A batch the teacher gets entirely wrong under "correct" keeps unit weights, not zeros.
    return mean.item<double>() > 0 ? (w / mean).detach() : torch::ones_like(w);
  }

  // InfoNCE over the batch: student i against the teacher anchors (positive: anchor i), plus the
  // teacher-anchored direction when symmetric.
  torch::Tensor infonce(const torch::Tensor& v_s, const torch::Tensor& v_t) const {
    const auto logits = torch::mm(v_s, v_t.t()) / tau_;
    const auto labels = torch::arange(v_s.size(0), v_s.options().dtype(torch::kLong));
    const auto none = F::CrossEntropyFuncOptions().reduction(torch::kNone);
    auto l = F::cross_entropy(logits, labels, none);
    if (symmetric_)
      l = l + F::cross_entropy(logits.t(), labels, none);
    return l;
  }

  // CRD's NCE (RepDistiller crd/criterion.py, memory.py): each anchor against its own sample's
  // memory entry and K uniformly drawn ones, exp(<m, v> / tau) / Z with Z fixed at the first
  // batch; then the banks move towards this batch's embeddings (momentum, renormalised).
  torch::Tensor crd(const torch::Tensor& v_s, const torch::Tensor& v_t,
                    const torch::Tensor& index) {
    const int64_t b = v_s.size(0), k = negatives_;
    const auto idx = index.to(v_s.device()).to(torch::kLong);
    const auto negatives = other_classes_ ? draw_other_classes(idx, k)
                                          : torch::randint(0, samples_, {b, k}, idx.options());
    const auto all = torch::cat({idx.unsqueeze(1), negatives}, 1).view(-1);
    const auto scores = [&](const torch::Tensor& memory, const torch::Tensor& v, torch::Tensor& z) {
      const auto m = memory.index_select(0, all).view({b, k + 1, dim_});
      auto out = torch::exp(torch::bmm(m, v.unsqueeze(2)).squeeze(2) / tau_);
      if (z.item<double>() < 0) {
        torch::NoGradGuard no_grad;
        z.fill_(out.mean().item<double>() * static_cast<double>(samples_));
      }
      return out / z;
    };
    const double mpn = static_cast<double>(k) / static_cast<double>(samples_);  // m * Pn
    const auto nce = [&](const torch::Tensor& out) {
      const auto pos = out.select(1, 0);
      const auto neg = out.narrow(1, 1, k);
      return -(torch::log(pos / (pos + mpn + 1e-7)) + torch::log(mpn / (neg + mpn + 1e-7)).sum(1));
    };
    // Student anchor against the teacher's memory; teacher anchor against the student's.
    auto l = nce(scores(state_->memory_t, v_s, state_->z_s));
    if (symmetric_)
      l = l + nce(scores(state_->memory_s, v_t, state_->z_t));
    {
      torch::NoGradGuard no_grad;
      const auto update = [&](torch::Tensor& memory, const torch::Tensor& v) {
        auto moved = memory.index_select(0, idx) * momentum_ + v.detach() * (1 - momentum_);
        memory.index_copy_(0, idx, moved / moved.pow(2).sum(1, true).sqrt());
      };
      update(state_->memory_s, v_s);
      update(state_->memory_t, v_t);
    }
    return l;
  }

  // negatives_from = "other_classes": each training sample's class, the indices sorted by class,
  // and each class's first position and count in that order.
  void index_classes(const ardkit::ObjectiveSetup& s) {
    const auto labels = s.train_labels ? s.train_labels() : torch::Tensor();
    if (!labels.defined() || labels.size(0) != samples_)
      ardkit::throw_runtime_error(
          "gacd: negatives_from = \"other_classes\" needs the training labels, which this run "
          "does not provide");
    const auto classes = std::max<int64_t>(s.num_classes, labels.max().item<int64_t>() + 1);
    labels_of_ = labels.to(s.device);
    by_class_ = std::get<1>(labels.sort(c10::optional<bool>(true), 0, false)).to(s.device);
    class_count_ = torch::bincount(labels, {}, classes).to(s.device);
    class_start_ = (class_count_.cumsum(0) - class_count_).to(s.device);
    if ((samples_ - class_count_).min().item<int64_t>() <= 0)
      ardkit::throw_config_error(fmt::format(
          "{}{} negatives_from = \"other_classes\": the training split has one class only, so "
          "there are no negatives from other classes: use negatives_from = \"any\"",
          negatives_origin_ == where_ ? "" : negatives_origin_ + ": ", where_));
  }

  // K indices per sample, uniform over the samples of the other classes (with replacement; CRD's
  // dataset draws them without, which differs by the rare repeat when K << N): a position r in
  // the class-sorted order with the sample's own class block cut out.
  torch::Tensor draw_other_classes(const torch::Tensor& idx, int64_t k) const {
    const auto own = labels_of_.index_select(0, idx);
    const auto start = class_start_.index_select(0, own).unsqueeze(1);
    const auto count = class_count_.index_select(0, own).unsqueeze(1);
    const auto others = (samples_ - count).to(torch::kDouble);
    auto r = (torch::rand({idx.size(0), k}, idx.options().dtype(torch::kDouble)) * others)
                 .to(torch::kLong);
    r = torch::minimum(r, (samples_ - count) - 1);
    const auto position = torch::where(r < start, r, r + count);
    return by_class_.index_select(0, position.view(-1)).view({idx.size(0), k});
  }

  std::string where_, estimator_origin_, reweight_origin_, guide_origin_, kl_origin_,
      negatives_origin_;
  std::map<std::string, std::string> origins_;
  bool crd_, other_classes_, symmetric_;
  std::string guide_, student_layer_, teacher_layer_, reweight_;
  int64_t dim_, negatives_, samples_ = 0;
  double tau_, momentum_, power_, contrastive_weight_, ce_weight_, kl_weight_, kl_temperature_;
  ardkit::BnMode bn_mode_;
  GacdState state_{nullptr};
  torch::Tensor by_class_, class_count_, class_start_, labels_of_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      string("estimator", "crd")
          .one_of({"crd", "infonce"})
          .help("crd: NCE with K negatives from momentum memory banks; infonce: the batch"),
      boolean("symmetric", true).help("add the teacher-anchored direction (CRD uses both)"),
      integer("feature_dim", 128).at_least(1).help("embedding width of both heads"),
      integer("negatives", 4096).at_least(1).help("crd: negatives K per sample (CRD: 16384)"),
      string("negatives_from", "any")
          .one_of({"any", "other_classes"})
          .help("crd: draw negatives uniformly over all training samples (the sample and its "
                "class included), or over the other classes' samples, as CRD's dataset does"),
      real("temperature", 0.07).greater_than(0).help("contrastive temperature tau"),
      real("momentum", 0.5).at_least(0).at_most(1).help("crd: memory-bank momentum"),
      string("guide", "contrastive")
          .one_of({"contrastive", "ce", "kl"})
          .help("what the attack maximizes: the contrastive loss to the teacher's anchors, the "
                "student's CE, or KL to the teacher (same label space only)"),
      string("reweight", "prob")
          .one_of({"none", "prob", "power", "correct"})
          .help("per-sample weight from the teacher's confidence in y on x (same label space "
                "only): p, p^reweight_power, [argmax = y]; mean 1 per batch"),
      real("reweight_power", 0.5).at_least(0).help("reweight = \"power\": the exponent"),
      real("contrastive_weight", 0.8).at_least(0).help("weight of the contrastive term"),
      real("ce_weight", 1.0).at_least(0).help("weight of CE(S(x'), y) on the student's labels"),
      real("kl_weight", 0.0)
          .at_least(0)
          .help("weight of T^2 KL(T(x) || S(x')) (same label space only)"),
      real("kl_temperature", 4.0).greater_than(0).help("temperature T of the KL term"),
      string("student_layer", "")
          .help("the student's tap to distill (e.g. \"layer3\"; feature maps are average-pooled); "
                "empty: the penultimate features"),
      string("teacher_layer", "").help("the teacher's tap to use as anchor; empty: penultimate"),
      distill::bn_mode_param("eval", "eval: as RSLAD/AdaAD/TRADES attack"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "gacd", "0.1.0",
           "GACD (Bai et al. 2020), re-derived: contrastive feature distillation on teacher-guided "
           "adversarial examples with sample reweighting",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Gacd>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("uniform", true); };
}
