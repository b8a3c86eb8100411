"""The synthetic shapes world: its clips and stories, the analyser that reads them back, the eval and model card."""
