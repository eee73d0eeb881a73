"""What an extractive answer is built around: the kind of question and its lead passage."""
