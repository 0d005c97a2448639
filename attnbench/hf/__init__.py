"""The seam to Hugging Face models: load a model and intercept its attention calls (seam), record
them to a capture file (capture), and swap a registered method into every layer (swap).

May import everything below it: errors, methods, measure, the metric contract, plan and results.
"""
