"""What tests share: paths, the command line, boards, models and data (not fixtures)."""
