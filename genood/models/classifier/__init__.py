"""Supervised image classifiers and their post-hoc OOD baselines (MSP, energy, Mahalanobis, kNN); see README.md."""

from .lightning_model import Classifier
from .scorers import EnergyScorer, KNNFeatureScorer, MahalanobisScorer, MSPScorer, classifier_scorers
from .torch_model import ClassifierNet, DigitsCNN, WideResNet, classifier_from_checkpoint, load_classifier_state

__all__ = ["Classifier", "ClassifierNet", "DigitsCNN", "WideResNet", "MSPScorer", "EnergyScorer", "MahalanobisScorer",
           "KNNFeatureScorer", "classifier_scorers", "classifier_from_checkpoint", "load_classifier_state"]
