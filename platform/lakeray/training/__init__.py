"""Training: pretraining and fine-tuning on Ray Train (+ DeepSpeed), searches with Ray Tune."""
