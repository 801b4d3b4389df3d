"""chipsim.models"""
