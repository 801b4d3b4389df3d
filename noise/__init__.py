"""chipsim.noise"""
