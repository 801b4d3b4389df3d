"""chipsim.hostlink"""
