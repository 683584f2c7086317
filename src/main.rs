fn main() {
    print!("{}", capt_fargate::crdgen::all_yaml());
}
